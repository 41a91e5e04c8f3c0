package main

import (
	"bytes"
	"encoding/csv"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/followupd/followupd/store"
)

// FuzzImportCSV feeds arbitrary bytes to readContactsCSV. It must never
// panic; when the header is readable every data row is either returned or
// reported, each at its own line number (at least 2, as line 1 is the
// header); no returned contact has an email without '@'; and no value of a
// returned contact (nor the name of a custom field) holds a CR or LF, as
// contact data ends up in mail headers.
func FuzzImportCSV(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "importcsv", "*.csv"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds in testdata/importcsv: %v", err)
	}
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	stages := []string{"lead", "prospect", "customer"}
	isStage := func(s string) bool { return slices.Contains(stages, s) }

	f.Fuzz(func(t *testing.T, data []byte) {
		// A panic fails this input only, so that the package's other
		// tests still run and the report shows the input.
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("readContactsCSV panicked on %q: %v\n%s", data, p, debug.Stack())
			}
		}()
		rows, problems, err := readContactsCSV(bytes.NewReader(data), "in.csv", isStage, stages)
		if err != nil {
			if rows != nil || problems != nil {
				t.Fatalf("error %v with %d rows and %d problems", err, len(rows), len(problems))
			}
			if !strings.HasPrefix(err.Error(), "in.csv:") {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}

		lines := map[int]bool{}
		for _, p := range problems {
			if p.Line < 2 {
				t.Errorf("problem at line %d (< 2): %s", p.Line, p)
			}
			if p.File != "in.csv" || p.Reason == "" {
				t.Errorf("problem without file or reason: %+v", p)
			}
			if lines[p.Line] {
				t.Errorf("line %d reported twice", p.Line)
			}
			lines[p.Line] = true
		}
		for _, r := range rows {
			if r.line < 2 {
				t.Errorf("row at line %d (< 2): %+v", r.line, r.contact)
			}
			if lines[r.line] {
				t.Errorf("line %d both returned and reported, or returned twice", r.line)
			}
			lines[r.line] = true
			checkContact(t, r.line, r.contact)
		}

		// Every record after the header that is not a blank line must be
		// accounted for, as a row or as a problem.
		if want := countRecords(data); len(rows)+len(problems) != want {
			t.Errorf("%d rows + %d problems, but the file has %d data records", len(rows), len(problems), want)
		}
	})
}

func checkContact(t *testing.T, line int, c store.Contact) {
	t.Helper()
	if !strings.Contains(c.Email, "@") {
		t.Errorf("line %d: email %q has no @", line, c.Email)
	}
	if c.Email != strings.ToLower(c.Email) {
		t.Errorf("line %d: email %q is not lower-cased", line, c.Email)
	}
	values := map[string]string{
		"email": c.Email, "first_name": c.FirstName, "last_name": c.LastName, "company": c.Company,
		"timezone": c.Timezone, "birthday": c.Birthday, "stage": c.Stage, "owner_account": c.OwnerAccount,
	}
	for k, v := range c.CustomFields {
		values["custom field "+k] = v
		// The API refuses such field names (web/actions.go); the import
		// must not let them in either.
		values["name of custom field "+k] = k
	}
	for k, v := range values {
		if strings.ContainsAny(v, "\r\n") {
			t.Errorf("line %d: %s %q holds a line break", line, k, v)
		}
	}
}

// countRecords reads data as readContactsCSV does and counts the data
// records that are not blank lines; -1 when the header is unreadable.
func countRecords(data []byte) int {
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	if _, err := cr.Read(); err != nil {
		return -1
	}
	n := 0
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return n
		}
		if err == nil && len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		n++
	}
}
