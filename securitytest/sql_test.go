package securitytest

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/followupd/followupd/store"
)

// dbMethods are the calls that take SQL text.
var dbMethods = map[string]bool{
	"Exec": true, "ExecContext": true, "MustExec": true, "MustExecContext": true,
	"Query": true, "QueryContext": true, "QueryRow": true, "QueryRowContext": true,
	"Queryx": true, "QueryxContext": true, "QueryRowx": true, "QueryRowxContext": true,
	"Get": true, "GetContext": true, "Select": true, "SelectContext": true,
	"Prepare": true, "PrepareContext": true, "Preparex": true, "PreparexContext": true,
	"NamedExec": true, "NamedExecContext": true, "NamedQuery": true, "NamedQueryContext": true,
	// the store's own wrappers
	"get": true, "selectRows": true, "exec": true, "prepared": true,
}

// withDest are the calls whose argument after the context is a destination.
var withDest = map[string]bool{"Get": true, "GetContext": true, "Select": true, "SelectContext": true, "get": true, "selectRows": true}

// sqlWrappers pass their query parameter on; their callers are checked.
var sqlWrappers = map[string]bool{
	"get": true, "selectRows": true, "exec": true, "prepared": true,
	"Exec": true, "Get": true, "Select": true, "Rebind": true, "rb": true, "webRebind": true,
}

// rebinders return their (last) argument with the placeholders rewritten.
var rebinders = map[string]bool{"Rebind": true, "rb": true, "webRebind": true}

// safeHelpers return SQL text that holds no data: placeholder lists built
// from counts, lockSuffix's constant FOR UPDATE clauses, valuesCTE's and
// rowsCTE's WITH clause of placeholders under column names and types its
// callers write as literals, and inList's condition on a literal column.
var safeHelpers = map[string]bool{"placeholders": true, "valueRows": true, "lockSuffix": true,
	"valuesCTE": true, "rowsCTE": true, "inList": true}

// allowedExprs are query expressions that are not literals but hold no
// data, by file: the migrations are SQL files embedded at build time.
var allowedExprs = map[string]string{"migrate.go": "m.sql"}

// sqlChecker is a static check, without type information, that SQL text in
// a package is assembled only from string literals, package constants, the
// fields of the prepared-queries struct (themselves checked) and the
// placeholder helpers: never from a variable that could hold data, nor with
// fmt.Sprintf.
type sqlChecker struct {
	fset     *token.FileSet
	consts   map[string]bool
	qFields  map[string]bool
	problems []string
	calls    int
}

func checkSQLSources(t *testing.T, files map[string]*ast.File, fset *token.FileSet) (problems []string, calls int) {
	t.Helper()
	c := &sqlChecker{fset: fset, consts: map[string]bool{}, qFields: map[string]bool{}}
	for _, f := range files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, s := range gd.Specs {
				switch s := s.(type) {
				case *ast.ValueSpec:
					if gd.Tok == token.CONST {
						for _, n := range s.Names {
							c.consts[n.Name] = true
						}
					}
				case *ast.TypeSpec:
					if st, ok := s.Type.(*ast.StructType); ok && s.Name.Name == "queries" {
						for _, fl := range st.Fields.List {
							for _, n := range fl.Names {
								c.qFields[n.Name] = true
							}
						}
					}
				}
			}
		}
	}
	for _, f := range files {
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			c.checkFunc(fn)
		}
	}
	sort.Strings(c.problems)
	return c.problems, c.calls
}

func (c *sqlChecker) report(n ast.Node, format string, args ...any) {
	p := c.fset.Position(n.Pos())
	c.problems = append(c.problems, fmt.Sprintf("%s:%d: %s", filepath.Base(p.Filename), p.Line, fmt.Sprintf(format, args...)))
}

func (c *sqlChecker) checkFunc(fn *ast.FuncDecl) {
	isQueriesMethod := false
	if fn.Recv != nil && len(fn.Recv.List) == 1 {
		if st, ok := fn.Recv.List[0].Type.(*ast.StarExpr); ok {
			if id, ok := st.X.(*ast.Ident); ok && id.Name == "queries" {
				isQueriesMethod = true
			}
		}
	}
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if isSprintf(n) && len(n.Args) > 0 && looksLikeSQL(n.Args[0]) {
				c.report(n, "SQL built with fmt.Sprintf")
			}
			if q, ok := c.queryArg(n); ok {
				c.calls++
				file := filepath.Base(c.fset.Position(n.Pos()).Filename)
				if allowedExprs[file] == exprString(c.fset, q) {
					return true
				}
				if !c.safe(q, fn, map[string]bool{}) {
					c.report(n, "query argument of %s is built from something other than literals, constants and placeholders: %s", callName(n), exprString(c.fset, q))
				}
			}
		case *ast.AssignStmt:
			// Every field of the prepared-queries struct is checked where
			// it is set, so that reading one is safe.
			for i, l := range n.Lhs {
				se, ok := l.(*ast.SelectorExpr)
				if !ok || !c.qFields[se.Sel.Name] || i >= len(n.Rhs) {
					continue
				}
				if !c.safe(n.Rhs[i], fn, map[string]bool{}) {
					c.report(n, "queries.%s is set from %s", se.Sel.Name, exprString(c.fset, n.Rhs[i]))
				}
			}
		case *ast.ReturnStmt:
			// Methods of queries that return SQL text (…SQL) are allowed
			// as query arguments, so their results are checked here.
			if isQueriesMethod && strings.HasSuffix(fn.Name.Name, "SQL") {
				for _, r := range n.Results {
					if !c.safe(r, fn, map[string]bool{}) {
						c.report(n, "%s returns %s", fn.Name.Name, exprString(c.fset, r))
					}
				}
			}
		}
		return true
	})
}

func callName(call *ast.CallExpr) string {
	switch f := call.Fun.(type) {
	case *ast.Ident:
		return f.Name
	case *ast.SelectorExpr:
		return f.Sel.Name
	}
	return ""
}

func isSprintf(call *ast.CallExpr) bool {
	se, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	x, ok := se.X.(*ast.Ident)
	return ok && x.Name == "fmt" && strings.HasPrefix(se.Sel.Name, "Sprint")
}

func looksLikeSQL(e ast.Expr) bool {
	lit, ok := e.(*ast.BasicLit)
	if !ok {
		return false
	}
	u := strings.ToUpper(lit.Value)
	for _, kw := range []string{"SELECT ", "INSERT ", "UPDATE ", "DELETE ", " WHERE ", " FROM ", " VALUES", " SET "} {
		if strings.Contains(u, kw) {
			return true
		}
	}
	return false
}

func isCtx(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name == "ctx"
	case *ast.CallExpr:
		if se, ok := e.Fun.(*ast.SelectorExpr); ok {
			if x, ok := se.X.(*ast.Ident); ok && x.Name == "context" {
				return true
			}
		}
	}
	return false
}

// queryArg finds the SQL argument of a database call.
func (c *sqlChecker) queryArg(call *ast.CallExpr) (ast.Expr, bool) {
	name := callName(call)
	if !dbMethods[name] {
		return nil, false
	}
	args := call.Args
	if len(args) > 0 && isCtx(args[0]) {
		args = args[1:]
	}
	if se, ok := call.Fun.(*ast.SelectorExpr); ok {
		if x, ok := se.X.(*ast.Ident); ok && x.Name == "sqlx" && len(args) > 0 {
			args = args[1:] // the queryer
		}
	}
	if withDest[name] && len(args) > 0 {
		args = args[1:]
	}
	if len(args) == 0 {
		return nil, false
	}
	return args[0], true
}

func (c *sqlChecker) safe(e ast.Expr, fn *ast.FuncDecl, seen map[string]bool) bool {
	switch e := e.(type) {
	case *ast.BasicLit:
		return true
	case *ast.ParenExpr:
		return c.safe(e.X, fn, seen)
	case *ast.BinaryExpr:
		return e.Op == token.ADD && c.safe(e.X, fn, seen) && c.safe(e.Y, fn, seen)
	case *ast.SelectorExpr:
		return c.qFields[e.Sel.Name]
	case *ast.CallExpr:
		name := callName(e)
		if safeHelpers[name] {
			return true
		}
		if se, ok := e.Fun.(*ast.SelectorExpr); ok && (se.Sel.Name == "Replace" || se.Sel.Name == "ReplaceAll") {
			if x, ok := se.X.(*ast.Ident); ok && x.Name == "strings" {
				for _, a := range e.Args {
					if !c.safe(a, fn, seen) {
						return false
					}
				}
				return true
			}
		}
		if rebinders[name] && len(e.Args) > 0 {
			return c.safe(e.Args[len(e.Args)-1], fn, seen)
		}
		if se, ok := e.Fun.(*ast.SelectorExpr); ok && strings.HasSuffix(se.Sel.Name, "SQL") {
			return true // a queries method: its returns are checked
		}
		return false
	case *ast.Ident:
		if c.consts[e.Name] {
			return true
		}
		if isParam(fn, e.Name) {
			return sqlWrappers[fn.Name.Name]
		}
		if seen[e.Name] {
			return true
		}
		seen[e.Name] = true
		found, ok := false, true
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.AssignStmt:
				for i, l := range n.Lhs {
					if id, isID := l.(*ast.Ident); isID && id.Name == e.Name && i < len(n.Rhs) {
						found = true
						if !c.safe(n.Rhs[i], fn, seen) {
							ok = false
						}
					}
				}
			case *ast.ValueSpec:
				for i, id := range n.Names {
					if id.Name == e.Name && i < len(n.Values) {
						found = true
						if !c.safe(n.Values[i], fn, seen) {
							ok = false
						}
					}
				}
			}
			return true
		})
		return found && ok
	}
	return false
}

func isParam(fn *ast.FuncDecl, name string) bool {
	for _, f := range fn.Type.Params.List {
		for _, n := range f.Names {
			if n.Name == name {
				return true
			}
		}
	}
	return false
}

func exprString(fset *token.FileSet, e ast.Expr) string {
	var b strings.Builder
	if err := printer.Fprint(&b, fset, e); err != nil {
		return fmt.Sprintf("expression at line %d", fset.Position(e.Pos()).Line)
	}
	s := strings.Join(strings.Fields(b.String()), " ")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

func parseGoFiles(t *testing.T, fset *token.FileSet, pattern string) map[string]*ast.File {
	t.Helper()
	names, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*ast.File{}
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, n, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = f
	}
	return out
}

// TestSQLIsParameterised checks statically that every query the store runs
// is built only from literals, constants and placeholder lists, so that
// values can only travel as parameters.
func TestSQLIsParameterised(t *testing.T) {
	t.Run("checker catches string building", func(t *testing.T) {
		src := `package store
const cols = "id, email"
type queries struct{ byID string }
func (q *queries) init(d string) { q.byID = "SELECT " + cols + " FROM contacts WHERE id = ?" }
func bad(ctx context.Context, tx *Tx, name, table string, n int) {
	tx.Exec(ctx, "DELETE FROM contacts WHERE name = '" + name + "'")
	q := "SELECT * FROM " + table
	tx.Get(ctx, &x, q)
	tx.Select(ctx, &x, fmt.Sprintf("SELECT * FROM contacts WHERE email = '%s'", name))
	tx.Exec(ctx, "INSERT INTO t VALUES " + valueRows(n, 2), 1, 2)
	tx.Get(ctx, &x, tx.Rebind("SELECT " + cols + " FROM contacts WHERE id = ?"), 1)
}`
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, "bad.go", src, 0)
		if err != nil {
			t.Fatal(err)
		}
		problems, calls := checkSQLSources(t, map[string]*ast.File{"bad.go": f}, fset)
		if calls != 5 || len(problems) != 4 { // Exec, Get via q, Select arg, Sprintf itself
			t.Fatalf("checker: %d calls, problems %q; want 5 calls, 4 problems", calls, problems)
		}
	})

	fset := token.NewFileSet()
	files := parseGoFiles(t, fset, filepath.Join("..", "store", "*.go"))
	if len(files) < 5 {
		t.Fatalf("found only %d Go files in ../store", len(files))
	}
	problems, calls := checkSQLSources(t, files, fset)
	if calls < 30 {
		t.Errorf("only %d database calls found in store/: the check is not looking at the right code", calls)
	}
	for _, p := range problems {
		t.Errorf("store/%s", p)
	}
}

// TestSQLInjectionRoundTrips: names made of SQL metacharacters go through
// the import (the batched upsert the CSV import uses) and the API unchanged,
// and the tables are still there afterwards.
func TestSQLInjectionRoundTrips(t *testing.T) {
	e := newWebEnv(t)
	evil := "Robert'); DROP TABLE contacts;--"
	evil2 := `x" OR "1"="1`
	created, _, err := e.st.ImportContacts(bg, []store.Contact{
		{Email: "bobby@example.org", FirstName: evil, LastName: evil2, Company: "'; DELETE FROM events; --", CustomFields: store.Fields{"note": evil}},
		{Email: "o'brien@example.org", FirstName: "O'Brien"},
	})
	if err != nil || created != 2 {
		t.Fatalf("ImportContacts: %d, %v", created, err)
	}
	c := e.client()
	body, _ := json.Marshal(map[string]any{"email": "tables@example.org", "first_name": evil, "company": evil2, "custom_fields": map[string]string{evil: evil}})
	resp, out := e.do(c, "POST", "/api/v1/contacts", strings.NewReader(string(body)), "Authorization", "Bearer "+apiToken, "Content-Type", "application/json")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("API create: %d %s", resp.StatusCode, out)
	}
	resp, out = e.do(c, "POST", "/api/v1/contacts/"+url.PathEscape("bobby@example.org")+"/notes",
		strings.NewReader(`{"text":"`+strings.ReplaceAll(evil, `"`, `\"`)+`"}`), "Authorization", "Bearer "+apiToken, "Content-Type", "application/json")
	if resp.StatusCode >= 300 {
		t.Errorf("API note: %d %s", resp.StatusCode, out)
	}

	// Everything reads back as written, over the store and the API.
	for email, want := range map[string]string{"bobby@example.org": evil, "tables@example.org": evil, "o'brien@example.org": "O'Brien"} {
		got, err := e.st.ContactByEmail(bg, email)
		if err != nil {
			t.Fatalf("ContactByEmail(%s) after the import: %v", email, err)
		}
		if got.FirstName != want {
			t.Errorf("%s: first name %q, want %q", email, got.FirstName, want)
		}
		resp, out := e.do(c, "GET", "/api/v1/contacts/"+url.PathEscape(email), nil, "Authorization", "Bearer "+apiToken)
		var d struct {
			Contact store.Contact `json:"contact"`
		}
		if resp.StatusCode != 200 || json.Unmarshal([]byte(out), &d) != nil || d.Contact.FirstName != want {
			t.Errorf("API GET %s: %d %.300s", email, resp.StatusCode, out)
		}
	}
	got, _ := e.st.ContactByEmail(bg, "tables@example.org")
	if got.Company != evil2 || got.CustomFields[evil] != evil {
		t.Errorf("API contact came back as %+v", got)
	}
	// Searching with the same text finds it and breaks nothing.
	for _, q := range []string{evil, "'", `%' OR 1=1 --`, "_"} {
		resp, out := e.do(c, "GET", "/api/v1/contacts?q="+url.QueryEscape(q), nil, "Authorization", "Bearer "+apiToken)
		if resp.StatusCode != 200 {
			t.Errorf("search %q: %d %s", q, resp.StatusCode, out)
		}
	}
	all, err := e.st.ListContacts(bg, store.ContactFilter{})
	if err != nil || len(all) != 3 {
		t.Errorf("ListContacts after the round trip: %d contacts, %v; want 3 (the table is still there)", len(all), err)
	}
	if evs, err := e.st.Timeline(bg, got.ID, 0); err != nil {
		t.Errorf("events table: %v", err)
	} else if len(evs) == 0 {
		t.Logf("no events for the API contact")
	}
}
