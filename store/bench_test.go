package store

import (
	"context"
	"os"
	"strconv"
	"testing"
)

// BenchmarkImportContacts imports 100,000 new contacts in one call, then the
// same 100,000 again (all updates), into a fresh database of each dialect.
// Run with -benchtime=1x to time one import of each:
//
//	go test -run '^$' -bench ImportContacts -benchtime=1x ./store/
func BenchmarkImportContacts(b *testing.B) {
	const rows = 100_000
	for _, db := range testDBs() {
		b.Run(db.dialect, func(b *testing.B) {
			if db.dialect == DialectPostgres && os.Getenv(pgEnv) == "" {
				b.Skip(pgEnv + " not set: Postgres benchmark skipped")
			}
			for _, phase := range []string{"create", "update"} {
				b.Run(phase, func(b *testing.B) {
					for i := 0; b.Loop(); i++ {
						b.StopTimer()
						s, err := Open(context.Background(), db.fresh(b))
						if err != nil {
							b.Fatal(err)
						}
						cs := importRows(rows, "b"+strconv.Itoa(i)+"x", "lead")
						if phase == "update" {
							if _, _, err := s.ImportContacts(context.Background(), cs); err != nil {
								b.Fatal(err)
							}
							for j := range cs {
								cs[j].Stage = "prospect"
								cs[j].CustomFields = Fields{"seen": "again"}
							}
						}
						b.StartTimer()
						created, updated, err := s.ImportContacts(context.Background(), cs)
						b.StopTimer()
						if err != nil {
							b.Fatal(err)
						}
						if created+updated != rows {
							b.Fatalf("imported %d+%d; want %d", created, updated, rows)
						}
						_ = s.Close()
						b.StartTimer()
					}
					b.ReportMetric(float64(rows), "contacts/op")
				})
			}
		})
	}
}
