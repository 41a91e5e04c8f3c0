package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"net"
	"net/http"
	"strings"
	"time"
)

// Authentication.
//
// The API and /metrics take the configured http.api_token as a bearer
// token. The dashboard takes the same bearer token, or a login form where
// the token is typed once: it sets a session cookie (HttpOnly,
// SameSite=Strict, Secure when served over TLS or when the public URL is
// https) holding an expiry and a random nonce signed with a key derived
// from the token, so changing the token logs every session out and the
// server keeps no session state. Dashboard forms carry a CSRF token derived
// from the session's nonce, and the dashboard is also wrapped in
// http.CrossOriginProtection (Sec-Fetch-Site / Origin checks); a request
// authenticated by an Authorization header needs no CSRF token, as a
// browser never adds that header on its own.

// constantTimeCompare is how secrets are compared; a variable only so that
// a test can assert that every token check goes through it.
var constantTimeCompare = subtle.ConstantTimeCompare

// tokenMatches compares a presented token with the configured one in
// constant time. Both are hashed first because ConstantTimeCompare returns
// early on a length mismatch, which would leak the token's length.
func tokenMatches(given, want string) bool {
	if want == "" {
		return false
	}
	g := sha256.Sum256([]byte(given))
	w := sha256.Sum256([]byte(want))
	return constantTimeCompare(g[:], w[:]) == 1
}

// bearerToken returns the token of an "Authorization: Bearer TOKEN" header.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// isLoopback reports whether the request comes from this machine.
func isLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

const (
	sessionCookie = "followupd_session"
	sessionTTL    = 12 * time.Hour
	nonceLen      = 16
)

// sessionKey derives the dashboard's signing key from the API token.
func sessionKey(apiToken string) []byte {
	m := hmac.New(sha256.New, []byte(apiToken))
	m.Write([]byte("followupd-dashboard-session-v1"))
	return m.Sum(nil)
}

func sign(key []byte, purpose string, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write(data)
	return m.Sum(nil)
}

// newSession returns a cookie value: expiry and nonce, then their MAC.
func newSession(apiToken string, now time.Time) string {
	payload := make([]byte, 8, 8+nonceLen)
	binary.BigEndian.PutUint64(payload, uint64(now.Add(sessionTTL).Unix()))
	var nonce [nonceLen]byte
	_, _ = rand.Read(nonce[:])
	payload = append(payload, nonce[:]...)
	mac := sign(sessionKey(apiToken), "session", payload)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(mac)
}

// checkSession verifies a cookie value and returns its nonce.
func checkSession(apiToken, value string, now time.Time) (nonce []byte, ok bool) {
	if apiToken == "" {
		return nil, false
	}
	p, m, found := strings.Cut(value, ".")
	if !found {
		return nil, false
	}
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p)
	mac, err2 := enc.DecodeString(m)
	if err1 != nil || err2 != nil || len(payload) != 8+nonceLen {
		return nil, false
	}
	if !hmac.Equal(mac, sign(sessionKey(apiToken), "session", payload)) {
		return nil, false
	}
	if now.Unix() >= int64(binary.BigEndian.Uint64(payload[:8])) {
		return nil, false
	}
	return payload[8:], true
}

// csrfToken is the token the session's forms carry.
func csrfToken(apiToken string, nonce []byte) string {
	return base64.RawURLEncoding.EncodeToString(sign(sessionKey(apiToken), "csrf", nonce))
}

func csrfMatches(apiToken string, nonce []byte, given string) bool {
	want := csrfToken(apiToken, nonce)
	return given != "" && constantTimeCompare([]byte(given), []byte(want)) == 1
}
