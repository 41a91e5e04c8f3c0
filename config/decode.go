package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Pos is a place in the configuration file.
type Pos struct {
	Line, Col int
}

// Error is one problem in the configuration file, located at a line and column.
type Error struct {
	File string
	Pos
	Msg string
}

func (e Error) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Errors is every problem found in one configuration file, in file order.
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// scalarDecoder is implemented by types that are written as one YAML scalar
// and need parsing (durations, time zones, …). The text is already env-expanded.
type scalarDecoder interface {
	decodeScalar(text string) error
}

// nodeDecoder is implemented by types that accept more than one YAML shape
// (a scalar or a list, a word or a mapping).
type nodeDecoder interface {
	decodeNode(d *decoder, n ast.Node, path string)
}

// decoder turns a YAML AST into Go values strictly: it reports every unknown
// key, wrong type and bad value with its position instead of stopping at the
// first, and remembers where each key was so later validation can point at it.
type decoder struct {
	file    string
	errs    Errors
	pos     map[string]Pos
	anchors map[string]ast.Node
	getenv  func(string) (string, bool)
	// fatal is set when the file could not be parsed at all.
	fatal bool
}

func newDecoder(file string, getenv func(string) (string, bool)) *decoder {
	return &decoder{file: file, pos: map[string]Pos{}, anchors: map[string]ast.Node{}, getenv: getenv}
}

func (d *decoder) errorf(p Pos, format string, args ...any) {
	// One error, one line: values quoted from the file may hold breaks.
	msg := oneLine.Replace(fmt.Sprintf(format, args...))
	d.errs = append(d.errs, Error{File: d.file, Pos: p, Msg: msg})
}

var oneLine = strings.NewReplacer("\r", `\r`, "\n", `\n`)

func posOf(n ast.Node) Pos {
	if n == nil {
		return Pos{}
	}
	t := n.GetToken()
	if t == nil || t.Position == nil {
		return Pos{}
	}
	return Pos{Line: t.Position.Line, Col: t.Position.Column}
}

// docPos is where a document starts: its "---" or, without one, its body.
// A document's own GetToken dereferences its body, which may be absent.
func docPos(doc *ast.DocumentNode) Pos {
	if doc.Start != nil && doc.Start.Position != nil {
		return Pos{Line: doc.Start.Position.Line, Col: doc.Start.Position.Column}
	}
	if doc.Body != nil {
		return posOf(doc.Body)
	}
	return Pos{}
}

// parseYAML parses data and decodes its single document into out.
func (d *decoder) parseYAML(data []byte, out any) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		var se *yaml.SyntaxError
		p := Pos{}
		msg := err.Error()
		if errors.As(err, &se) {
			msg = se.Message
			if se.Token != nil && se.Token.Position != nil {
				p = Pos{Line: se.Token.Position.Line, Col: se.Token.Position.Column}
			}
		}
		d.errorf(p, "YAML syntax error: %s", msg)
		d.fatal = true
		return
	}
	if len(f.Docs) == 0 || f.Docs[0].Body == nil {
		d.errorf(Pos{}, "the file is empty: it needs at least an accounts section")
		d.fatal = true
		return
	}
	if len(f.Docs) > 1 {
		d.errorf(docPos(f.Docs[1]), "only one YAML document is allowed (remove the second ---)")
	}
	d.decode(f.Docs[0].Body, reflect.ValueOf(out).Elem(), "")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// unwrap follows anchors, aliases and tags to the node that holds the value.
func (d *decoder) unwrap(n ast.Node) ast.Node {
	for i := 0; i < 32; i++ {
		switch t := n.(type) {
		case *ast.AnchorNode:
			if t.Name != nil {
				d.anchors[t.Name.GetToken().Value] = t.Value
			}
			n = t.Value
		case *ast.AliasNode:
			name := t.Value.GetToken().Value
			target, ok := d.anchors[name]
			if !ok {
				d.errorf(posOf(t), "unknown alias %q", "*"+name)
				return nil
			}
			n = target
		case *ast.TagNode:
			n = t.Value
		default:
			return n
		}
	}
	return n
}

// scalarText returns the text of a scalar node, env-expanded when it is a
// string. ok is false when the node is not a scalar.
func (d *decoder) scalarText(n ast.Node, path string) (text string, isNull, ok bool) {
	switch t := n.(type) {
	case *ast.NullNode:
		return "", true, true
	case *ast.StringNode:
		return d.expand(t.Value, posOf(t), path), false, true
	case *ast.LiteralNode:
		return d.expand(t.Value.Value, posOf(t), path), false, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return n.GetToken().Value, false, true
	}
	return "", false, false
}

// expand replaces ${VAR} and ${VAR:-default}; $$ stands for a literal $.
func (d *decoder) expand(s string, p Pos, path string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' {
			b.WriteByte(c)
			continue
		}
		if i+1 < len(s) && s[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		if i+1 >= len(s) || s[i+1] != '{' {
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			d.errorf(p, "%s: unclosed ${ in %q", path, s)
			return s
		}
		expr := s[i+2 : i+end]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !validEnvName(name) {
			d.errorf(p, "%s: ${%s} is not a valid environment variable reference", path, expr)
		} else if v, ok := d.getenv(name); ok && (v != "" || !hasDef) {
			b.WriteString(v)
		} else if hasDef {
			b.WriteString(def)
		} else {
			d.errorf(p, "%s: environment variable %s is not set (set it, or write ${%s:-default})", path, name, name)
		}
		i += end
	}
	return b.String()
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r == '_' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (i > 0 && r >= '0' && r <= '9') {
			continue
		}
		return false
	}
	return true
}

var (
	scalarDecoderType = reflect.TypeOf((*scalarDecoder)(nil)).Elem()
	nodeDecoderType   = reflect.TypeOf((*nodeDecoder)(nil)).Elem()
)

func describe(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.NullNode:
		return "nothing"
	}
	return fmt.Sprintf("%q", n.GetToken().Value)
}

func (d *decoder) decode(n ast.Node, v reflect.Value, path string) {
	n = d.unwrap(n)
	if n == nil {
		return
	}
	p := posOf(n)
	if path != "" {
		if _, seen := d.pos[path]; !seen {
			d.pos[path] = p
		}
	}
	if v.Kind() == reflect.Pointer {
		if _, isNull := n.(*ast.NullNode); isNull {
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
		return
	}
	if v.CanAddr() {
		pv := v.Addr()
		if pv.Type().Implements(nodeDecoderType) {
			pv.Interface().(nodeDecoder).decodeNode(d, n, path)
			return
		}
		if pv.Type().Implements(scalarDecoderType) {
			text, isNull, ok := d.scalarText(n, path)
			if !ok {
				d.errorf(p, "%s: expected a single value, got %s", path, describe(n))
				return
			}
			if isNull {
				return
			}
			if err := pv.Interface().(scalarDecoder).decodeScalar(text); err != nil {
				d.errorf(p, "%s: %v", path, err)
			}
			return
		}
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		seq, ok := n.(*ast.SequenceNode)
		if !ok {
			if _, isNull := n.(*ast.NullNode); isNull {
				return
			}
			d.errorf(p, "%s: expected a list, got %s", path, describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(seq.Values), len(seq.Values))
		for i, item := range seq.Values {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		values, ok := mappingValues(n)
		if !ok {
			if _, isNull := n.(*ast.NullNode); isNull {
				return
			}
			d.errorf(p, "%s: expected a mapping of names to values, got %s", path, describe(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(values))
		for _, mv := range values {
			key, _, _ := d.scalarText(d.unwrap(mv.Key), path)
			elem := reflect.New(v.Type().Elem()).Elem()
			d.decode(mv.Value, elem, join(path, key))
			m.SetMapIndex(reflect.ValueOf(key).Convert(v.Type().Key()), elem)
		}
		v.Set(m)
	case reflect.String:
		text, _, ok := d.scalarText(n, path)
		if !ok {
			d.errorf(p, "%s: expected a text value, got %s", path, describe(n))
			return
		}
		v.SetString(text)
	case reflect.Bool:
		text, isNull, ok := d.scalarText(n, path)
		if isNull {
			return
		}
		b, err := strconv.ParseBool(text)
		if !ok || err != nil {
			d.errorf(p, "%s: expected true or false, got %s", path, describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		text, isNull, ok := d.scalarText(n, path)
		if isNull {
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(text, "_", ""), 10, 64)
		if !ok || err != nil || v.OverflowInt(i) {
			d.errorf(p, "%s: expected a whole number, got %s", path, describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		text, isNull, ok := d.scalarText(n, path)
		if isNull {
			return
		}
		f, err := strconv.ParseFloat(text, 64)
		if !ok || err != nil {
			d.errorf(p, "%s: expected a number, got %s", path, describe(n))
			return
		}
		v.SetFloat(f)
	default:
		d.errorf(p, "%s: cannot decode into %s (a bug in followupd)", path, v.Type())
	}
}

func mappingValues(n ast.Node) ([]*ast.MappingValueNode, bool) {
	switch t := n.(type) {
	case *ast.MappingNode:
		return t.Values, true
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{t}, true
	}
	return nil, false
}

// yamlFields lists the keys a struct accepts, following `yaml:",inline"`.
func yamlFields(t reflect.Type) (map[string][]int, []string) {
	fields := map[string][]int{}
	var names []string
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			if tag == "-" || !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			idx := append(append([]int{}, prefix...), i)
			if strings.Contains(opts, "inline") {
				walk(f.Type, idx)
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			fields[name] = idx
			names = append(names, name)
		}
	}
	walk(t, nil)
	sort.Strings(names)
	return fields, names
}

func (d *decoder) decodeStruct(n ast.Node, v reflect.Value, path string) {
	values, ok := mappingValues(n)
	if !ok {
		if _, isNull := n.(*ast.NullNode); isNull {
			return
		}
		what := path
		if what == "" {
			what = "the top level"
		}
		d.errorf(posOf(n), "%s: expected a mapping (key: value lines), got %s", what, describe(n))
		return
	}
	fields, names := yamlFields(v.Type())
	for _, mv := range values {
		keyNode := d.unwrap(mv.Key)
		if keyNode == nil {
			continue
		}
		if mv.Key.IsMergeKey() {
			d.decodeStruct(d.unwrap(mv.Value), v, path)
			continue
		}
		key := keyNode.GetToken().Value
		idx, ok := fields[key]
		if !ok {
			where := path
			if where == "" {
				where = "top level"
			}
			msg := fmt.Sprintf("%s: unknown key %q", where, key)
			if s := suggest(key, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += fmt.Sprintf(" (known keys: %s)", strings.Join(names, ", "))
			}
			d.errorf(posOf(keyNode), "%s", msg)
			continue
		}
		d.decode(mv.Value, v.FieldByIndex(idx), join(path, key))
	}
}

// suggest returns the known key closest to key when it is a likely typo.
func suggest(key string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if dist := levenshtein(key, n); dist < bestDist {
			best, bestDist = n, dist
		}
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
