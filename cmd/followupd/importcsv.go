package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/store"
)

// importRow is one valid contact read from a CSV file.
type importRow struct {
	line    int
	contact store.Contact
}

// rowProblem is a CSV row that was skipped, and why.
type rowProblem struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

func (p rowProblem) String() string { return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Reason) }

// knownColumns are the CSV columns stored in a contact's own fields; every
// other column becomes a custom field.
var knownColumns = map[string]bool{
	"email": true, "first_name": true, "last_name": true, "company": true,
	"timezone": true, "birthday": true, "stage": true,
}

// readContactsCSV reads a CSV file with a header row. It returns the valid
// rows and one problem per skipped row; only an unreadable file or header is
// an error. stageFor validates a stage name.
func readContactsCSV(r io.Reader, file string, isStage func(string) bool, stageNames []string) ([]importRow, []rowProblem, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, nil, fmt.Errorf("%s: the file is empty: it needs a header row with an email column", file)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: cannot read the header row: %v", file, err)
	}
	cols := make([]string, len(header))
	emailCol := -1
	seenCol := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		key := strings.ToLower(h)
		if knownColumns[key] {
			h = key
		}
		if h == "" {
			return nil, nil, fmt.Errorf("%s:1: column %d has no name in the header row", file, i+1)
		}
		if strings.ContainsAny(h, "\r\n") {
			return nil, nil, fmt.Errorf("%s:1: column %d: the name holds a line break (a quote left open in the header row?)", file, i+1)
		}
		if j, dup := seenCol[h]; dup {
			return nil, nil, fmt.Errorf("%s:1: column %q appears twice (columns %d and %d)", file, h, j+1, i+1)
		}
		seenCol[h] = i
		cols[i] = h
		if h == "email" {
			emailCol = i
		}
	}
	if emailCol < 0 {
		return nil, nil, fmt.Errorf("%s:1: the header row has no email column (columns: %s)", file, strings.Join(cols, ", "))
	}

	var rows []importRow
	var problems []rowProblem
	firstLine := map[string]int{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				problems = append(problems, rowProblem{file, pe.StartLine, "not valid CSV: " + pe.Err.Error()})
				continue
			}
			return nil, nil, fmt.Errorf("%s:%d: %v", file, line, err)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a blank line
		}
		if len(rec) != len(cols) {
			problems = append(problems, rowProblem{file, line, fmt.Sprintf("has %d fields, the header has %d", len(rec), len(cols))})
			continue
		}
		c, reason := contactFromRecord(rec, cols, isStage, stageNames)
		if reason != "" {
			problems = append(problems, rowProblem{file, line, reason})
			continue
		}
		if first, dup := firstLine[c.Email]; dup {
			problems = append(problems, rowProblem{file, line, fmt.Sprintf("%s is already on line %d", c.Email, first)})
			continue
		}
		firstLine[c.Email] = line
		rows = append(rows, importRow{line: line, contact: c})
	}
	return rows, problems, nil
}

func contactFromRecord(rec, cols []string, isStage func(string) bool, stageNames []string) (store.Contact, string) {
	var c store.Contact
	for i, col := range cols {
		v := strings.TrimSpace(rec[i])
		switch col {
		case "email":
			addr, err := mail.ParseAddress(v)
			if v == "" {
				return c, "no email address"
			}
			if err != nil || addr.Name != "" || !strings.Contains(addr.Address[strings.LastIndexByte(addr.Address, '@')+1:], ".") {
				return c, fmt.Sprintf("%q is not a valid email address", v)
			}
			c.Email = strings.ToLower(addr.Address)
		case "first_name":
			c.FirstName = oneLine(v)
		case "last_name":
			c.LastName = oneLine(v)
		case "company":
			c.Company = oneLine(v)
		case "timezone":
			if v != "" {
				if _, err := config.LoadLocation(v); err != nil {
					return c, err.Error()
				}
			}
			c.Timezone = v
		case "birthday":
			if v != "" {
				if _, err := time.Parse(time.DateOnly, v); err != nil {
					return c, fmt.Sprintf("bad birthday %q (write YYYY-MM-DD)", v)
				}
			}
			c.Birthday = v
		case "stage":
			if v != "" && !isStage(v) {
				return c, fmt.Sprintf("unknown stage %q (stages: %s)", v, strings.Join(stageNames, ", "))
			}
			c.Stage = v
		default:
			if v != "" {
				if c.CustomFields == nil {
					c.CustomFields = map[string]string{}
				}
				c.CustomFields[col] = oneLine(v)
			}
		}
	}
	return c, ""
}

// oneLine folds line breaks: contact data ends up in mail headers and must
// never carry CR or LF there.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}
