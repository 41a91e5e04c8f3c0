package templates

import (
	"bytes"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	texttemplate "text/template"
	"text/template/parse"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	yamlast "github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
	"github.com/yuin/goldmark"
)

// Set is a loaded template directory. It is safe for concurrent use: the parsed
// templates never change after Load, and every Render executes clones of them that
// no other render is using at the same time.
type Set struct {
	entries map[string]*entry
	names   []string
	md      goldmark.Markdown
}

type entry struct {
	name      string
	markdown  bool
	file      string
	subject   *part
	preheader *part
	fromName  *part
	body      *part
	html      *part
}

// part is one parsed template (subject, body, …) with the source it came from. The
// parsed templates are never executed themselves, only clones: html/template
// refuses to clone a template that has run, and each execution needs functions
// bound to its own render's data. Cloning and binding cost about as much as the
// render, so clones are kept for reuse in pool, one pool per mode because the mode
// changes what the functions print.
type part struct {
	src  source
	text *texttemplate.Template
	html *htmltemplate.Template
	pool [numModes]sync.Pool // of *boundTemplate
}

// Load parses every template in fsys. Files whose names start with "." or "_" are
// skipped, as are extensions other than .md, .txt and .html. On failure the error
// is an Errors value listing every problem with FILE:LINE:COL.
func Load(fsys fs.FS) (*Set, error) {
	dirents, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	type files struct{ md, txt, html string }
	byName := map[string]*files{}
	for _, de := range dirents {
		fn := de.Name()
		if de.IsDir() || strings.HasPrefix(fn, ".") || strings.HasPrefix(fn, "_") {
			continue
		}
		ext := path.Ext(fn)
		name := strings.TrimSuffix(fn, ext)
		if name == "" {
			continue
		}
		f := byName[name]
		if f == nil {
			f = &files{}
		}
		switch ext {
		case ".md":
			f.md = fn
		case ".txt":
			f.txt = fn
		case ".html":
			f.html = fn
		default:
			continue
		}
		byName[name] = f
	}

	s := &Set{entries: map[string]*entry{}, md: newMarkdown()}
	var errs Errors
	for name, f := range byName {
		switch {
		case f.md != "" && f.txt != "":
			errs = append(errs, Error{File: f.txt, Line: 1, Col: 1, Msg: fmt.Sprintf("%s and %s both define %q; keep one", f.md, f.txt, name)})
			continue
		case f.md != "" && f.html != "":
			errs = append(errs, Error{File: f.html, Line: 1, Col: 1, Msg: fmt.Sprintf("%s makes its own HTML part; %s would be ignored, remove it or use %s.txt", f.md, f.html, name)})
			continue
		case f.md == "" && f.txt == "":
			errs = append(errs, Error{File: f.html, Line: 1, Col: 1, Msg: fmt.Sprintf("%s needs %s.txt beside it for the subject and the plain-text part", f.html, name)})
			continue
		}
		e, es := loadEntry(fsys, name, f.md, f.txt, f.html)
		errs = append(errs, es...)
		if e != nil && len(es) == 0 {
			s.entries[name] = e
		}
	}
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	for n := range s.entries {
		s.names = append(s.names, n)
	}
	sort.Strings(s.names)
	if es := s.trialRender(); len(es) > 0 {
		es.sort()
		return nil, es
	}
	return s, nil
}

// Names lists the templates in the set, sorted.
func (s *Set) Names() []string { return append([]string(nil), s.names...) }

// Has reports whether the set holds a template called name.
func (s *Set) Has(name string) bool {
	_, ok := s.entries[name]
	return ok
}

func loadEntry(fsys fs.FS, name, mdFile, txtFile, htmlFile string) (*entry, Errors) {
	e := &entry{name: name, markdown: mdFile != "", file: mdFile}
	if e.file == "" {
		e.file = txtFile
	}
	raw, err := fs.ReadFile(fsys, e.file)
	if err != nil {
		return nil, Errors{{File: e.file, Line: 1, Col: 1, Msg: err.Error(), Err: err}}
	}
	doc, perr := splitFile(e.file, raw)
	if perr != nil {
		return nil, Errors{*perr}
	}
	fm, errs := parseFrontMatter(e.file, doc.fm, doc.fmLine)
	if len(errs) > 0 {
		return nil, errs
	}
	if v, ok := fm["subject"]; !ok || strings.TrimSpace(v.src.text) == "" {
		return nil, Errors{{File: e.file, Line: 1, Col: 1, Msg: "front matter has no subject"}}
	}
	var es Errors
	parse := func(name string, src source, m mode, html bool) *part {
		p, es2 := parsePart(name, src, m, html)
		es = append(es, es2...)
		return p
	}
	e.subject = parse("subject", fm["subject"].src, modeText, false)
	if v, ok := fm["preheader"]; ok {
		e.preheader = parse("preheader", v.src, modeText, false)
	}
	if v, ok := fm["from_name"]; ok {
		e.fromName = parse("from_name", v.src, modeText, false)
	}
	bodyMode := modeText
	if e.markdown {
		bodyMode = modeMD
	}
	e.body = parse("body", source{file: e.file, text: doc.body, line: doc.bodyLine, col: 1}, bodyMode, false)
	if htmlFile != "" {
		hraw, err := fs.ReadFile(fsys, htmlFile)
		if err != nil {
			return nil, append(es, Error{File: htmlFile, Line: 1, Col: 1, Msg: err.Error(), Err: err})
		}
		htext, herr := checkText(htmlFile, hraw)
		if herr != nil {
			return nil, append(es, *herr)
		}
		if strings.HasPrefix(htext, "---\n") {
			es = append(es, Error{File: htmlFile, Line: 1, Col: 1, Msg: fmt.Sprintf("front matter belongs in %s; %s holds only HTML", txtFile, htmlFile)})
		} else {
			e.html = parse("body", source{file: htmlFile, text: htext, line: 1, col: 1}, modeHTML, true)
		}
	}
	if len(es) > 0 {
		return nil, es
	}
	return e, nil
}

type splitDoc struct {
	fm       string
	fmLine   int
	body     string
	bodyLine int
}

func checkText(file string, raw []byte) (string, *Error) {
	raw = bytes.TrimPrefix(raw, []byte("\xEF\xBB\xBF"))
	if !utf8.Valid(raw) {
		return "", &Error{File: file, Line: 1, Col: 1, Msg: "file is not valid UTF-8"}
	}
	// CR LF to LF keeps line numbers; a lone CR would not be a line to an editor.
	return strings.ReplaceAll(string(raw), "\r\n", "\n"), nil
}

// splitFile separates the front matter from the body, remembering the line each
// starts on so template errors can be reported against the file.
func splitFile(file string, raw []byte) (*splitDoc, *Error) {
	s, err := checkText(file, raw)
	if err != nil {
		return nil, err
	}
	const hint = "file must start with front matter: a --- line, subject: …, and a closing --- line"
	lines := strings.Split(s, "\n")
	if strings.TrimRight(lines[0], " \t") != "---" {
		return nil, &Error{File: file, Line: 1, Col: 1, Msg: hint}
	}
	for k := 1; k < len(lines); k++ {
		if t := strings.TrimRight(lines[k], " \t"); t == "---" || t == "..." {
			return &splitDoc{
				fm:       strings.Join(lines[1:k], "\n"),
				fmLine:   2,
				body:     strings.Join(lines[k+1:], "\n"),
				bodyLine: k + 2,
			}, nil
		}
	}
	return nil, &Error{File: file, Line: 1, Col: 1, Msg: "front matter is not closed: add a --- line after it"}
}

type fmValue struct{ src source }

var fmKeys = map[string]bool{"subject": true, "preheader": true, "from_name": true}

// parseFrontMatter reads the YAML through goccy's AST rather than Unmarshal, because
// the position of each value is what lets a template error inside the subject point
// at the right column of the right line.
func parseFrontMatter(file, fm string, line0 int) (map[string]fmValue, Errors) {
	out := map[string]fmValue{}
	if strings.TrimSpace(fm) == "" {
		return out, nil
	}
	at := func(tk *token.Token) (int, int) {
		if tk == nil || tk.Position == nil {
			return line0, 1
		}
		return line0 + tk.Position.Line - 1, max(tk.Position.Column, 1)
	}
	yerr := func(tk *token.Token, msg string) Errors {
		l, c := at(tk)
		if lines := strings.Split(fm, "\n"); l-line0 < len(lines) && l-line0 >= 0 && strings.Contains(lines[l-line0], ": {{") {
			msg += ` (in YAML a value starting with {{ must be quoted: subject: "{{ … }}")`
		}
		return Errors{{File: file, Line: l, Col: c, Msg: "front matter: " + msg}}
	}
	f, err := parser.ParseBytes([]byte(fm), 0)
	if err != nil {
		var ye yaml.Error
		if errors.As(err, &ye) {
			return nil, yerr(ye.GetToken(), ye.GetMessage())
		}
		return nil, Errors{{File: file, Line: line0, Col: 1, Msg: "front matter: " + err.Error()}}
	}
	if len(f.Docs) != 1 {
		return nil, Errors{{File: file, Line: line0, Col: 1, Msg: "front matter must be one YAML mapping"}}
	}
	var pairs []*yamlast.MappingValueNode
	switch b := f.Docs[0].Body.(type) {
	case nil, *yamlast.NullNode:
	case *yamlast.MappingNode:
		pairs = b.Values
	case *yamlast.MappingValueNode:
		pairs = []*yamlast.MappingValueNode{b}
	case *yamlast.CommentNode:
	default:
		return nil, yerr(b.GetToken(), "want key: value lines (subject, preheader, from_name)")
	}
	var errs Errors
	for _, mv := range pairs {
		key := mv.Key.GetToken().Value
		if !fmKeys[key] {
			errs = append(errs, yerr(mv.Key.GetToken(), fmt.Sprintf("unknown key %q (want subject, preheader or from_name)", key))...)
			continue
		}
		if _, dup := out[key]; dup {
			errs = append(errs, yerr(mv.Key.GetToken(), fmt.Sprintf("%s is set twice", key))...)
			continue
		}
		var text string
		var tk *token.Token
		switch v := mv.Value.(type) {
		case *yamlast.NullNode:
			tk = v.GetToken()
		case *yamlast.StringNode:
			text, tk = v.Value, v.GetToken()
		case *yamlast.LiteralNode:
			text, tk = v.Value.Value, v.Value.GetToken()
		case yamlast.ScalarNode:
			text, tk = v.GetToken().Value, v.GetToken()
		default:
			errs = append(errs, yerr(mv.Value.GetToken(), key+" must be text")...)
			continue
		}
		l, c := at(tk)
		if tk != nil && (tk.Type == token.SingleQuoteType || tk.Type == token.DoubleQuoteType) {
			c++
		}
		out[key] = fmValue{src: source{file: file, text: text, line: l, col: c}}
	}
	return out, errs
}

// parsePart parses one template and rewrites it (see rewriter).
func parsePart(name string, src source, m mode, isHTML bool) (*part, Errors) {
	// Only the names and signatures matter to the parser; nothing is called.
	funcs := (&binding{}).funcs(m)
	p := &part{src: src}
	trees := map[string]*parse.Tree{}
	var exists func(string) bool
	if isHTML {
		t, err := htmltemplate.New(name).Option("missingkey=zero").Funcs(funcs).Parse(src.text)
		if err != nil {
			return nil, Errors{src.fromTemplateError(err)}
		}
		for _, x := range t.Templates() {
			trees[x.Name()] = x.Tree
		}
		exists = func(n string) bool { return t.Lookup(n) != nil }
		p.html = t
	} else {
		t, err := texttemplate.New(name).Option("missingkey=zero").Funcs(funcs).Parse(src.text)
		if err != nil {
			return nil, Errors{src.fromTemplateError(err)}
		}
		for _, x := range t.Templates() {
			trees[x.Name()] = x.Tree
		}
		exists = func(n string) bool { return t.Lookup(n) != nil }
		p.text = t
	}
	rw := &rewriter{src: src, mode: m, part: name}
	rw.run(trees, exists)
	if len(rw.errs) > 0 {
		return nil, rw.errs
	}
	return p, nil
}
