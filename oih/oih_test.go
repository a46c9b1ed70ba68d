package oih_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/oih"
	"github.com/heraldhq/herald/oih/internal/typegen"
)

func TestGeneratedCodeIsCurrent(t *testing.T) {
	want, err := typegen.Generate(catalog.Default())
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile("events.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, want) {
		t.Error("oih/events.go is not what the catalogue generates: run go generate ./oih")
	}
}

// TestEveryExampleFitsItsType decodes each catalogue example into its
// event's type and checks that what the type encodes still passes the
// catalogue: the types say what the schemas say.
func TestEveryExampleFitsItsType(t *testing.T) {
	cat := catalog.Default()
	for _, e := range cat.Entries() {
		t.Run(e.Name, func(t *testing.T) {
			v, ok := oih.New(e.Name)
			if !ok {
				t.Fatalf("no type for %s", e.Name)
			}
			if v.EventName() != e.Name {
				t.Errorf("%T names %q, want %q", v, v.EventName(), e.Name)
			}
			dec := json.NewDecoder(bytes.NewReader(e.Example))
			if err := dec.Decode(v); err != nil {
				t.Fatalf("example %s does not decode into %T: %v", e.Example, v, err)
			}
			out, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			name := strings.ReplaceAll(e.Name, "*", "5f1c0c6e2a9b4c0033333333")
			if err := cat.ValidatePayload(name, out); err != nil {
				t.Errorf("%T encodes %s, which the catalogue refuses: %v", v, out, err)
			}
		})
	}
	if _, ok := oih.New("no.such.event"); ok {
		t.Error("New knows a name the catalogue lacks")
	}
}

func TestFamilyNamesFollowTheirWildcards(t *testing.T) {
	if got := (oih.Dispatch{}).EventName(); got != "dispatch.*" {
		t.Errorf("zero Dispatch names %q, want the pattern dispatch.*", got)
	}
	d := oih.Dispatch{TargetFlowID: "f-1"}
	if got := d.EventName(); got != "dispatch.f-1" {
		t.Errorf("Dispatch names %q, want dispatch.f-1", got)
	}
	var r oih.Dispatch
	r.SetEventName("dispatch.f-2")
	if r.TargetFlowID != "f-2" {
		t.Errorf("SetEventName(dispatch.f-2) set %q", r.TargetFlowID)
	}
}

func TestMisspeltFieldDoesNotCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed: %v", err)
	}
	out, err := exec.Command(goTool, "build", "-o", os.DevNull, "./testdata/wrongfield").CombinedOutput()
	if err == nil {
		t.Fatal("a program using oih.IAMUserCreated{UserName: …} compiled")
	}
	if !strings.Contains(string(out), "unknown field UserName") {
		t.Errorf("the build failed, but not for the misspelt field:\n%s", out)
	}
}
