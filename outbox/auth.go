package outbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/wneessen/go-mail/smtp"

	"github.com/followupd/followupd/config"
)

// errPlaintextAuth refuses to send credentials over an unencrypted
// connection that the configuration did not allow twice (tls: none and
// insecure_plaintext: true).
var errPlaintextAuth = errors.New("outbox: refusing to send credentials over an unencrypted connection (set tls: none and insecure_plaintext: true to allow it on a test server)")

// plaintextAllowed is the configuration saying twice that credentials may
// travel in clear text.
func plaintextAllowed(s config.Server) bool {
	return s.TLS == "none" && s.InsecurePlaintext
}

// checkServer refuses a server configuration the outbox will not use.
func checkServer(s config.Server) error {
	switch s.TLS {
	case "tls", "starttls":
	case "none":
		if !s.InsecurePlaintext {
			return errors.New("tls: none sends mail and credentials unencrypted; it needs insecure_plaintext: true")
		}
	default:
		return fmt.Errorf("unknown tls mode %q (want tls, starttls or none)", s.TLS)
	}
	switch s.Auth {
	case "", "auto", "plain", "login", "cram-md5", "xoauth2":
	default:
		return fmt.Errorf("unknown auth %q", s.Auth)
	}
	if s.Auth == "xoauth2" && s.OAuth2TokenCommand == "" {
		return errors.New("auth xoauth2 needs an oauth2_token_command")
	}
	return nil
}

// tokenSource runs an account's oauth2_token_command and caches the token
// briefly. The token is a secret: it is never logged nor put in an error.
type tokenSource struct {
	command string
	timeout time.Duration
	ttl     time.Duration
	now     func() time.Time

	mu      sync.Mutex
	token   string
	fetched time.Time
}

func (t *tokenSource) get(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" && t.now().Sub(t.fetched) < t.ttl {
		return t.token, nil
	}
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", t.command)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 200 {
			msg = msg[:200]
		}
		if msg != "" {
			return "", fmt.Errorf("outbox: oauth2_token_command failed: %w: %s", err, msg)
		}
		return "", fmt.Errorf("outbox: oauth2_token_command failed: %w", err)
	}
	tok := strings.TrimSpace(stdout.String())
	if tok == "" || strings.ContainsAny(tok, "\r\n\x01 ") {
		return "", errors.New("outbox: oauth2_token_command printed no single-line token")
	}
	t.token, t.fetched = tok, t.now()
	return tok, nil
}

// forget drops the cached token, e.g. after the server refused it.
func (t *tokenSource) forget() {
	t.mu.Lock()
	t.token = ""
	t.mu.Unlock()
}

// authenticator is the smtp.Auth the outbox logs in with. It picks the
// mechanism once the server's EHLO is known ("auto": PLAIN, then LOGIN,
// then CRAM-MD5), and refuses an unencrypted connection unless the
// configuration allowed it twice — go-mail's own PLAIN and LOGIN allow
// plaintext to localhost, which the outbox does not.
type authenticator struct {
	mode           string
	user, password string
	token          string // XOAUTH2
	allowPlaintext bool
	inner          smtp.Auth
}

func (a *authenticator) Start(si *smtp.ServerInfo) (string, []byte, error) {
	if !si.TLS && !a.allowPlaintext {
		return "", nil, errPlaintextAuth
	}
	mode := a.mode
	if mode == "" || mode == "auto" {
		mode = ""
		if a.token != "" {
			mode = "xoauth2"
		} else {
			for _, m := range []string{"PLAIN", "LOGIN", "CRAM-MD5"} {
				if slices.ContainsFunc(si.Auth, func(s string) bool { return strings.EqualFold(s, m) }) {
					mode = strings.ToLower(m)
					break
				}
			}
		}
		if mode == "" {
			return "", nil, fmt.Errorf("outbox: the server offers no AUTH mechanism followupd supports (offered: %s)", strings.Join(si.Auth, " "))
		}
	}
	switch mode {
	case "plain":
		// allowUnencrypted: the check above is the outbox's own.
		a.inner = smtp.PlainAuth("", a.user, a.password, si.Name, true)
	case "login":
		a.inner = smtp.LoginAuth(a.user, a.password, si.Name, true)
	case "cram-md5":
		a.inner = smtp.CRAMMD5Auth(a.user, a.password)
	case "xoauth2":
		a.inner = smtp.XOAuth2Auth(a.user, a.token)
	default:
		return "", nil, fmt.Errorf("outbox: unknown auth %q", mode)
	}
	return a.inner.Start(si)
}

func (a *authenticator) Next(fromServer []byte, more bool) ([]byte, error) {
	return a.inner.Next(fromServer, more)
}

// xoauth2Client is the IMAP side of XOAUTH2 (go-sasl has OAUTHBEARER only).
type xoauth2Client struct{ user, token string }

var _ sasl.Client = xoauth2Client{}

func (c xoauth2Client) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

func (c xoauth2Client) Next(challenge []byte) ([]byte, error) {
	// The server sent an error as a challenge; an empty answer ends the
	// exchange with its failure.
	return []byte{}, nil
}
