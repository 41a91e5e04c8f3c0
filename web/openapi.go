package web

import (
	_ "embed"
	"net/http"
)

// openAPISpec describes the API under /api/v1/ (OpenAPI 3.0). It is written
// by hand; TestOpenAPIDescribesEveryRoute keeps it in step with apiRoutes.
//
//go:embed openapi.json
var openAPISpec []byte

// serveOpenAPI serves the API's description; it needs no token, as it
// holds nothing secret.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openAPISpec)
}
