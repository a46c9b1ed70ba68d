package auditlog

import (
	"errors"
	"testing"
)

func TestCanonicalNumbersAgreeOnValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"0", "0"}, {"-0", "0"}, {"0.000", "0"}, {"0e99", "0"}, {"0e99999999999999999999", "0"},
		{"100", "1e2"}, {"1e2", "1e2"}, {"100.0", "1e2"}, {"1E+2", "1e2"}, {"0.1e3", "1e2"},
		{"42", "42"}, {"-42", "-42"}, {"1.50", "15e-1"}, {"15e-1", "15e-1"}, {"0.001", "1e-3"},
		{"12345678901234567890123", "12345678901234567890123"}, {"1.0000000000000001", "10000000000000001e-16"},
		{"-1.5e-7", "-15e-8"},
	}
	for _, tt := range tests {
		got, ok := canonicalNumber([]byte(tt.in))
		if !ok || string(got) != tt.want {
			t.Errorf("canonicalNumber(%s) = %s, %v; want %s", tt.in, got, ok, tt.want)
		}
	}
	for _, in := range []string{"1e131072", "1e-16384", "1e99999999999999999999"} {
		if _, ok := canonicalNumber([]byte(in)); ok {
			t.Errorf("canonicalNumber(%s) accepted a number PostgreSQL cannot hold", in)
		}
	}
}

func TestParseRefusesWhatTheStoresWouldKeepApart(t *testing.T) {
	ok := []string{`{}`, `{"a":[1,"x",{"b":null}],"c":true}`, `{"é":"\ud83d\ude00"}`, `{"a":"\u00e9"}`}
	for _, in := range ok {
		if _, err := parseDocument([]byte(in)); err != nil {
			t.Errorf("parse %s: %v", in, err)
		}
	}
	bad := []string{`{"a":1,"a":1}`, `{"a":"\u0000"}`, "{\"a\":\"\x00\"}", `{"a":"\udc00"}`, `{"a":"\ud800x"}`, "{\"a\":\"\xc3\"}", `{"a":01}`, `{"a":1,}`, `{"a":1} x`}
	for _, in := range bad {
		_, err := parseDocument([]byte(in))
		if err == nil || !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("parse %q: %v, want a refusal", in, err)
		}
	}
}
