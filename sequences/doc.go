// Package sequences is followupd's pure domain logic: send windows and
// business days, sequences and their steps, when each step falls due, stable
// A/B and account choice, the sales pipeline's stages, and the evaluation of
// reply/bounce/purchase rules into one Decision.
//
// The package does no I/O and never reads the clock: every function takes the
// instant and the *time.Location it needs, so the daemon, the preview command
// and the tests all get the same answer for the same inputs. Its types mirror
// the config package's (field names kept close) without importing it; the
// daemon converts one into the other.
//
// Times of day are local wall-clock times read in a zone: a 09:00–17:00
// window opens at 09:00 on the clock of that zone on that date, whatever the
// UTC offset is that day. Where a wall-clock time does not exist (the
// spring-forward gap) the first instant after it is used; where it happens
// twice (the fall-back overlap) the first occurrence is used.
package sequences
