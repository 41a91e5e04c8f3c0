package templates

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrMissingData is wrapped by the *Error that Render returns when a template prints
// an empty or missing value without a default.
var ErrMissingData = errors.New("missing data")

// ErrUnknownTemplate is returned by Render for a name the set does not hold.
var ErrUnknownTemplate = errors.New("unknown template")

// Error is a problem found at a place in a template file. Line and Col are 1-based;
// Col counts characters, not bytes, so editors land on the right spot.
type Error struct {
	File string
	Line int
	Col  int
	Msg  string
	// Err is the underlying cause when there is one (for example ErrMissingData).
	Err error
}

// Error formats the error as "FILE:LINE:COL: msg", the form editors and CI logs link.
func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Unwrap returns the cause so errors.Is(err, ErrMissingData) works.
func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem Load found, sorted by file and position, so one run of
// `followupd check` shows them all instead of one per edit.
type Errors []Error

// Error lists the errors one per line.
func (es Errors) Error() string {
	var b strings.Builder
	for i := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(es[i].Error())
	}
	return b.String()
}

func (es Errors) sort() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

// source ties a template's text to where that text sits in its file, because Go
// templates only know positions inside the string they were given: the body starts
// after the front matter, and the subject starts wherever its YAML value does.
type source struct {
	file string
	text string
	line int // file line of text[0]
	col  int // file column of text[0]
}

// at maps a byte offset in s.text to a file line and character column.
func (s source) at(off int) (line, col int) {
	if off < 0 {
		off = 0
	}
	if off > len(s.text) {
		off = len(s.text)
	}
	before := s.text[:off]
	nl := strings.Count(before, "\n")
	start := strings.LastIndexByte(before, '\n') + 1
	col = utf8.RuneCountInString(before[start:]) + 1
	if nl == 0 {
		col += s.col - 1
	}
	return s.line + nl, col
}

// lineStart returns the byte offset where the 1-based template line n begins.
func (s source) lineStart(n int) int {
	off := 0
	for i := 1; i < n; i++ {
		j := strings.IndexByte(s.text[off:], '\n')
		if j < 0 {
			return len(s.text)
		}
		off += j + 1
	}
	return off
}

// lineText returns the 1-based template line n without its newline.
func (s source) lineText(n int) (string, int) {
	start := s.lineStart(n)
	rest := s.text[start:]
	if i := strings.IndexByte(rest, '\n'); i >= 0 {
		rest = rest[:i]
	}
	return rest, start
}

func (s source) errAt(off int, msg string) Error {
	l, c := s.at(off)
	return Error{File: s.file, Line: l, Col: c, Msg: msg}
}

// tmplErrRE matches the location prefix text/template puts on its errors:
// "template: NAME:LINE:COL: msg" at execution, "template: NAME:LINE: msg" at parse.
var tmplErrRE = regexp.MustCompile(`(?s)^template: ([A-Za-z_]+):(\d+):(?:(\d+):)? (.*)$`)

var execNoiseRE = regexp.MustCompile(`(?s)^executing "[^"]*" at <.*?>: `)

var callingRE = regexp.MustCompile(`(?s)^error calling ([A-Za-z_]+): (.*)$`)

var startedAtRE = regexp.MustCompile(` started at [A-Za-z_]+:(\d+)$`)

var quotedRE = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)

// fromTemplateError turns a text/template error into an Error at the right file
// position. Parse errors carry only a line, so the column is found by looking for
// the token the message names on that line; that is a guess, but a good one for
// the common "function "x" not defined" case.
func (s source) fromTemplateError(err error) Error {
	msg := err.Error()
	m := tmplErrRE.FindStringSubmatch(msg)
	if m == nil {
		return Error{File: s.file, Line: s.line, Col: s.col, Msg: msg, Err: err}
	}
	line, _ := strconv.Atoi(m[2])
	rest := execNoiseRE.ReplaceAllString(m[4], "")
	if sm := startedAtRE.FindStringSubmatchIndex(rest); sm != nil && m[3] == "" {
		// "unclosed action started at body:2" is reported where the file ends;
		// the place to fix is where the action starts.
		line, _ = strconv.Atoi(rest[sm[2]:sm[3]])
		rest = rest[:sm[0]] + " (missing }})"
		m[4] = ""
	}
	if cm := callingRE.FindStringSubmatch(rest); cm != nil && strings.HasPrefix(cm[2], cm[1]+":") {
		// Our functions already name themselves in their errors.
		rest = cm[2]
	}
	lt, start := s.lineText(line)
	var off int
	if m[3] != "" {
		// text/template columns are 0-based byte offsets within the line.
		c, _ := strconv.Atoi(m[3])
		off = start + min(c, len(lt))
	} else {
		off = start + guessColumn(lt, m[4])
	}
	e := s.errAt(off, rest)
	e.Err = err
	return e
}

// guessColumn finds the byte offset in line of the first token quoted in msg, or of
// the first action, or 0.
func guessColumn(line, msg string) int {
	if q := quotedRE.FindStringSubmatch(msg); q != nil {
		tok, err := strconv.Unquote(`"` + q[1] + `"`)
		if err == nil && tok != "" {
			if i := indexWord(line, tok); i >= 0 {
				return i
			}
		}
	}
	if i := strings.Index(line, "{{"); i >= 0 {
		return i
	}
	return 0
}

// indexWord is strings.Index that skips matches inside a longer identifier, so
// "foo" is not found inside "foobar".
func indexWord(s, w string) int {
	isID := func(b byte) bool {
		return b == '_' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
	}
	for from := 0; from <= len(s); {
		i := strings.Index(s[from:], w)
		if i < 0 {
			return -1
		}
		i += from
		end := i + len(w)
		if (i == 0 || !isID(s[i-1]) || !isID(w[0])) && (end == len(s) || !isID(s[end]) || !isID(w[len(w)-1])) {
			return i
		}
		from = i + 1
	}
	return -1
}
