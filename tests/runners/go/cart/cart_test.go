package cart

import (
	"os"
	"testing"
)

// A second package with a test of the same name as one in the first.
func TestPasses(t *testing.T) {}

func TestRefund(t *testing.T) {
	t.Run("flaky", func(t *testing.T) {
		if os.Getenv("TOMATO_ATTEMPT") == "1" {
			t.Fatal("fails on the first attempt only")
		}
	})
	t.Run("passes", func(t *testing.T) {})
}

// A setup error: the test cannot get what it needs and stops.
func TestSetupError(t *testing.T) {
	if _, err := os.ReadFile("/nonexistent/fixture.json"); err != nil {
		t.Fatalf("setup: %v", err)
	}
}
