package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/store"
)

// TestOpenAPIDescribesEveryRoute keeps openapi.json and apiRoutes in step:
// every route is described, nothing else is, and the document is sound
// enough for a client generator (path parameters declared, references
// resolved, bearer auth).
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	var doc struct {
		OpenAPI    string                                `json:"openapi"`
		Security   []map[string][]string                 `json:"security"`
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			SecuritySchemes map[string]struct{ Type, Scheme string } `json:"securitySchemes"`
			Parameters      map[string]struct{ Name, In string }     `json:"parameters"`
		} `json:"components"`
	}
	var raw map[string]any
	if err := json.Unmarshal(openAPISpec, &raw); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	if err := json.Unmarshal(openAPISpec, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0.") {
		t.Errorf("openapi = %q, want 3.0.x", doc.OpenAPI)
	}
	if s := doc.Components.SecuritySchemes["bearerAuth"]; s.Type != "http" || s.Scheme != "bearer" || len(doc.Security) != 1 {
		t.Errorf("bearer auth is not declared: %+v %+v", doc.Components.SecuritySchemes, doc.Security)
	}

	var routes []string
	public := map[string]bool{}
	for _, rt := range (&Server{}).apiRoutes() {
		routes = append(routes, rt.Method+" "+rt.Path)
		public[rt.Method+" "+rt.Path] = rt.Public
	}
	var described []string
	paramRE := regexp.MustCompile(`\{([a-z_]+)\}`)
	for path, ops := range doc.Paths {
		for method, opRaw := range ops {
			key := strings.ToUpper(method) + " " + path
			described = append(described, key)
			var op struct {
				OperationID string                 `json:"operationId"`
				Parameters  []map[string]any       `json:"parameters"`
				Responses   map[string]any         `json:"responses"`
				Security    *[]map[string][]string `json:"security"`
			}
			if err := json.Unmarshal(opRaw, &op); err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			if op.OperationID == "" || len(op.Responses) == 0 {
				t.Errorf("%s has no operationId or no responses", key)
			}
			if public[key] != (op.Security != nil && len(*op.Security) == 0) {
				t.Errorf("%s: security %v, public %v", key, op.Security, public[key])
			}
			var inPath []string
			for _, p := range op.Parameters {
				name, in := p["name"], p["in"]
				if ref, ok := p["$ref"].(string); ok {
					c := doc.Components.Parameters[strings.TrimPrefix(ref, "#/components/parameters/")]
					name, in = c.Name, c.In
				}
				if in == "path" {
					inPath = append(inPath, name.(string))
				}
			}
			var want []string
			for _, m := range paramRE.FindAllStringSubmatch(path, -1) {
				want = append(want, m[1])
			}
			slices.Sort(inPath)
			slices.Sort(want)
			if !slices.Equal(inPath, want) {
				t.Errorf("%s declares path parameters %v, want %v", key, inPath, want)
			}
		}
	}
	slices.Sort(routes)
	slices.Sort(described)
	for _, r := range routes {
		if !slices.Contains(described, r) {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for _, d := range described {
		if !slices.Contains(routes, d) {
			t.Errorf("openapi.json describes %s, which is not a route", d)
		}
	}

	// Every $ref points at something.
	refRE := regexp.MustCompile(`"\$ref":\s*"#/([^"]+)"`)
	for _, m := range refRE.FindAllStringSubmatch(string(openAPISpec), -1) {
		var node any = raw
		for _, part := range strings.Split(m[1], "/") {
			obj, _ := node.(map[string]any)
			node = obj[part]
		}
		if node == nil {
			t.Errorf("unresolved $ref #/%s", m[1])
		}
	}
}

func TestOpenAPIServedWithoutToken(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	for _, tok := range []string{testToken, ""} {
		e.setConfig(func(c *config.Config) { c.HTTP.APIToken = config.Secret(tok) })
		w := e.serve(request("GET", "/api/v1/openapi.json", nil))
		expect(t, w, http.StatusOK)
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") || !bytes.Equal(w.Body.Bytes(), openAPISpec) {
			t.Errorf("token %q: %s, %d bytes", tok, ct, w.Body.Len())
		}
	}
	// The rest of the API still needs the token.
	e.setConfig(func(*config.Config) {})
	expect(t, e.serve(request("GET", "/api/v1/pipeline", nil)), http.StatusUnauthorized)
	expect(t, e.serve(request("POST", "/api/v1/openapi.json", nil)), http.StatusUnauthorized)
}
