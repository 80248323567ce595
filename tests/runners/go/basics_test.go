// Tomato's go preset suite: every kind of outcome a rerun must handle.
package runners

import (
	"os"
	"testing"
)

func firstAttempt() bool { v := os.Getenv("TOMATO_ATTEMPT"); return v == "" || v == "1" }

func TestPasses(t *testing.T) { t.Log("output of TestPasses") }

func TestAlwaysFails(t *testing.T) { t.Fatal("expected 1 but was 2") }

func TestFlaky(t *testing.T) {
	if firstAttempt() {
		t.Fatal("fails on the first attempt only")
	}
}

func TestSkipped(t *testing.T) { t.Skip("not today") }

func TestOddSubtests(t *testing.T) {
	for _, name := range []string{"with space", "quote \" and ' too", "brackets [x]", "кириллица", "passes"} {
		t.Run(name, func(t *testing.T) {
			if name != "passes" && firstAttempt() {
				t.Fatal(name)
			}
		})
	}
}
