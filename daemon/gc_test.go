package daemon

import (
	"os"
	"runtime/debug"
	"testing"
)

// The operator's GOGC wins over the daemon's own target.
func TestTuneGCLeavesAnOperatorsGOGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })

	t.Setenv("GOGC", "150")
	debug.SetGCPercent(150)
	TuneGC()
	if got := debug.SetGCPercent(150); got != 150 {
		t.Fatalf("GC percent %d with GOGC=150 set, want 150", got)
	}

	os.Unsetenv("GOGC") // t.Setenv restores it
	debug.SetGCPercent(100)
	TuneGC()
	if got := debug.SetGCPercent(100); got != GCPercent {
		t.Fatalf("GC percent %d without GOGC, want %d", got, GCPercent)
	}
}
