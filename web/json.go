package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// errorBody is every JSON error: a message, and the offending field when
// the request had one wrong.
type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error": "internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

// fieldError is a request field that fails validation; its message names
// the field.
type fieldError struct {
	Field string
	Msg   string
}

func (e *fieldError) Error() string { return e.Field + ": " + e.Msg }

func badField(field, format string, args ...any) *fieldError {
	return &fieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// httpError carries a status for writeErr.
type httpError struct {
	Status int
	Msg    string
}

func (e *httpError) Error() string { return e.Msg }

func errStatus(status int, format string, args ...any) *httpError {
	return &httpError{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// writeErr answers with the status an error calls for.
func writeErr(w http.ResponseWriter, err error) {
	var fe *fieldError
	var he *httpError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &fe):
		writeJSON(w, http.StatusBadRequest, errorBody{Error: fe.Error(), Field: fe.Field})
	case errors.As(err, &he):
		writeError(w, he.Status, he.Msg)
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is larger than %d bytes", mbe.Limit))
	default:
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

// decodeJSON reads a request body holding exactly one JSON object into
// dst, refusing unknown fields so that a typo is not silently ignored.
func decodeJSON(r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return errStatus(http.StatusUnsupportedMediaType, "send the body as JSON with Content-Type: application/json")
		}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return mbe
		}
		return errStatus(http.StatusBadRequest, "unable to read the request body")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return errStatus(http.StatusBadRequest, "the request body is empty: send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return badField(te.Field, "want a %s, got a JSON %s", jsonKind(te.Type.Kind().String()), te.Value)
		case errors.As(err, &te):
			return errStatus(http.StatusBadRequest, "the body must be a JSON object")
		case errors.As(err, &se):
			return errStatus(http.StatusBadRequest, "invalid JSON at byte %d: %v", se.Offset, err)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return badField(name, "unknown field")
		}
		return errStatus(http.StatusBadRequest, "invalid JSON: %v", err)
	}
	if dec.More() {
		return errStatus(http.StatusBadRequest, "the body must hold a single JSON object")
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "map", "struct":
		return "object"
	case "slice", "array":
		return "list"
	case "bool":
		return "boolean"
	}
	return "number"
}
