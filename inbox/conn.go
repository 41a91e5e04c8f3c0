package inbox

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-sasl"
)

// conn is one logged-in IMAP connection.
type conn struct {
	client   *imapclient.Client
	timeout  time.Duration // the watchdog's silence limit
	idle     bool          // the server offers IDLE
	selected string        // folder selected (read-only), "" when none

	closeOnce sync.Once
}

func (c *conn) close() {
	c.closeOnce.Do(func() { _ = c.client.Close() })
}

// errTimeout is wrapped by the errors of commands the watchdog cut short.
var errTimeout = errors.New("the server stopped answering")

// guard runs fn, which sends commands and waits for their answers, under the
// watchdog: if the server stays silent for longer than the timeout (or ctx
// ends), the connection is closed, which makes fn's pending Wait return.
// fn calls kick whenever the server shows signs of life, to restart the
// timer during long transfers.
func (c *conn) guard(ctx context.Context, fn func(kick func()) error) error {
	var fired atomic.Bool
	t := time.AfterFunc(c.timeout, func() {
		fired.Store(true)
		c.close()
	})
	stop := context.AfterFunc(ctx, c.close)
	err := fn(func() { t.Reset(c.timeout) })
	t.Stop()
	stop()
	switch {
	case fired.Load():
		return fmt.Errorf("inbox: %w within %v; connection closed", errTimeout, c.timeout)
	case ctx.Err() != nil && err != nil:
		return ctx.Err()
	}
	return err
}

// examine opens a folder read-only (EXAMINE): the watcher never SELECTs, so
// the server cannot change flags on its behalf (guarantee 4).
func (c *conn) examine(ctx context.Context, folder string) (*imap.SelectData, error) {
	var data *imap.SelectData
	err := c.guard(ctx, func(func()) error {
		var err error
		data, err = c.client.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
		return err
	})
	if err != nil {
		c.selected = ""
		return nil, fmt.Errorf("inbox: EXAMINE %s: %w", folder, err)
	}
	c.selected = folder
	return data, nil
}

// dial connects, logs in and reads the capabilities.
func (w *Watcher) dial(ctx context.Context) (*conn, error) {
	im := w.imap
	addr := net.JoinHostPort(im.Host, strconv.Itoa(im.Port))
	dialer := &net.Dialer{Timeout: w.o.DialTimeout, KeepAlive: 30 * time.Second}
	raw, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("inbox: connect to %s: %w", addr, err)
	}
	// Until the login is over, a silent server or the end of ctx closes
	// the socket, which unblocks whatever is waiting on it.
	var fired atomic.Bool
	watchdog := time.AfterFunc(w.o.DialTimeout+w.o.CommandTimeout, func() {
		fired.Store(true)
		_ = raw.Close()
	})
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	c, err := w.handshake(ctx, raw, addr)
	watchdog.Stop()
	stop()
	if err != nil {
		_ = raw.Close()
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case fired.Load():
			return nil, fmt.Errorf("inbox: %s: %w while logging in", addr, errTimeout)
		}
		return nil, err
	}
	return c, nil
}

func (w *Watcher) handshake(ctx context.Context, raw net.Conn, addr string) (*conn, error) {
	im := w.imap
	opts := &imapclient.Options{
		TLSConfig:   w.tlsConfig(),
		WordDecoder: &mime.WordDecoder{CharsetReader: charset.Reader},
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			// Runs on the client's reader goroutine: never send a command
			// from here, only wake the watcher up.
			Mailbox: func(data *imapclient.UnilateralDataMailbox) {
				if data.NumMessages != nil {
					signal(w.news)
				}
			},
		},
	}
	var client *imapclient.Client
	switch im.TLS {
	case "tls", "":
		tc := tls.Client(raw, opts.TLSConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("inbox: TLS with %s: %w", addr, err)
		}
		client = imapclient.New(tc, opts)
	case "starttls":
		var err error
		client, err = imapclient.NewStartTLS(raw, opts)
		if err != nil {
			return nil, fmt.Errorf("inbox: STARTTLS with %s: %w", addr, err)
		}
	case "none":
		if !im.InsecurePlaintext {
			return nil, errors.New("inbox: tls: none needs insecure_plaintext: true")
		}
		client = imapclient.New(raw, opts)
	default:
		return nil, fmt.Errorf("inbox: unknown imap tls mode %q", im.TLS)
	}
	c := &conn{client: client, timeout: w.o.CommandTimeout}
	if err := client.WaitGreeting(); err != nil {
		c.close()
		return nil, fmt.Errorf("inbox: %s: no greeting: %w", addr, err)
	}
	if err := w.login(ctx, client); err != nil {
		c.close()
		return nil, err
	}
	caps := client.Caps()
	if caps == nil {
		c.close()
		return nil, fmt.Errorf("inbox: %s: no CAPABILITY answer", addr)
	}
	// beta.8 idles without checking that the server can.
	c.idle = caps.Has(imap.CapIdle)
	return c, nil
}

func (w *Watcher) tlsConfig() *tls.Config {
	var cfg *tls.Config
	if w.o.TLSConfig != nil {
		cfg = w.o.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = w.imap.Host
	}
	if cfg.NextProtos == nil && w.imap.TLS != "starttls" {
		cfg.NextProtos = []string{"imap"}
	}
	if w.imap.InsecureSkipVerify {
		cfg.InsecureSkipVerify = true
	}
	return cfg
}

// login authenticates as the config says. Errors never contain the password
// or the token.
func (w *Watcher) login(ctx context.Context, client *imapclient.Client) error {
	im := w.imap
	user, pass := im.Username, im.Password.Value()
	caps := client.Caps()
	var err error
	switch strings.ToLower(im.Auth) {
	case "xoauth2":
		var token string
		token, err = w.oauthToken(ctx)
		if err != nil {
			return err
		}
		err = client.Authenticate(&xoauth2Client{user: user, token: token})
	case "cram-md5":
		err = client.Authenticate(&cramMD5Client{user: user, pass: pass})
	case "plain":
		if caps.Has(imap.AuthCap(sasl.Plain)) {
			err = client.Authenticate(sasl.NewPlainClient("", user, pass))
		} else {
			err = client.Login(user, pass).Wait()
		}
	default: // "auto", "login"
		if caps.Has(imap.CapLoginDisabled) && caps.Has(imap.AuthCap(sasl.Plain)) {
			err = client.Authenticate(sasl.NewPlainClient("", user, pass))
		} else {
			err = client.Login(user, pass).Wait()
		}
	}
	if err != nil {
		return fmt.Errorf("inbox: login as %s on %s failed: %w", user, im.Host, err)
	}
	return nil
}

// oauthToken runs oauth2_token_command and returns the first line it
// prints. The token is never logged; the command's own error output is
// quoted, shortened, when it fails.
func (w *Watcher) oauthToken(ctx context.Context) (string, error) {
	command := w.imap.OAuth2TokenCommand
	if strings.TrimSpace(command) == "" {
		return "", errors.New("inbox: auth xoauth2 needs imap.oauth2_token_command")
	}
	ctx, cancel := context.WithTimeout(ctx, w.o.TokenTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("no token within %v", w.o.TokenTimeout)
		}
		if msg != "" {
			return "", fmt.Errorf("inbox: oauth2_token_command failed: %v: %s", err, msg)
		}
		return "", fmt.Errorf("inbox: oauth2_token_command failed: %v", err)
	}
	token, _, _ := strings.Cut(strings.TrimSpace(stdout.String()), "\n")
	token = strings.TrimSpace(token)
	if token == "" {
		return "", errors.New("inbox: oauth2_token_command printed no token")
	}
	return token, nil
}

// xoauth2Client is the XOAUTH2 SASL mechanism (Google, Microsoft), which
// go-sasl does not have.
type xoauth2Client struct{ user, token string }

func (c *xoauth2Client) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

// Next receives the server's error report (a JSON object) after a refused
// token. The exchange is abandoned with that report as the error; the
// connection is closed by the caller.
func (c *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	return nil, fmt.Errorf("XOAUTH2 refused: %s", strings.TrimSpace(string(challenge)))
}

// cramMD5Client is the CRAM-MD5 SASL mechanism (RFC 2195).
type cramMD5Client struct{ user, pass string }

func (c *cramMD5Client) Start() (string, []byte, error) { return "CRAM-MD5", nil, nil }

func (c *cramMD5Client) Next(challenge []byte) ([]byte, error) {
	mac := hmac.New(md5.New, []byte(c.pass))
	mac.Write(challenge)
	return []byte(c.user + " " + hex.EncodeToString(mac.Sum(nil))), nil
}
