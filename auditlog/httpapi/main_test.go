package httpapi

import (
	"os"
	"testing"

	"github.com/heraldhq/herald/internal/testkit"
)

// TestMain sums up, per variable, the tests skipped for want of a service.
func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }
