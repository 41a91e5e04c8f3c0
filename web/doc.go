// Package web serves followupd's HTTP side: the JSON API, one-click
// unsubscribe, the dashboard, health and metrics; and it dispatches
// webhooks.
//
// The daemon builds a Server with New (the store, a func returning the
// current config, the Metrics it records into, a readiness callback, hooks
// that run its rules) and runs it with Start and Stop; it runs the webhook
// dispatcher (NewWebhooks) the same way and queues webhooks with
// EnqueueWebhook inside the transaction of the change they report.
//
// Routes:
//
//	GET  /healthz                   200 "ok" while the process runs; no auth
//	GET  /readyz                    200, or 503 with JSON detail per account; no auth
//	GET  /metrics                   Prometheus; bearer token, or loopback when no token is set
//	GET  /api/v1/openapi.json       OpenAPI 3.0 description of the API; no auth
//	     /api/v1/...                JSON API; bearer token (403 while http.api_token is unset)
//	GET  /u/{token}                 unsubscribe confirmation page; changes nothing
//	POST /u/{token}                 one-click unsubscribe (RFC 8058)
//	                                (a tampered or foreign token: 400, nothing changes)
//	GET  /, /contacts, /contacts/{email}, /login; POST forms   the dashboard
//
// Every request body is capped at MaxBodyBytes; errors of the API are JSON
// {"error": "...", "field": "..."} with the matching status. See auth.go for
// how the token, the dashboard session and CSRF protection work.
package web
