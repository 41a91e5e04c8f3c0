package outbox

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/followupd/followupd/config"
)

// conn is one SMTP connection slot of an account: a go-mail client and the
// connection it dialed, reused for message after message until it dies or
// idles too long.
type conn struct {
	a        *account
	client   *gomail.Client
	sc       *smtp.Client
	lastUsed time.Time
}

func (c *conn) open() bool { return c.sc != nil && c.sc.HasConnection() }

func tlsConfig(s config.Server) *tls.Config {
	return &tls.Config{
		ServerName:         s.Host,
		InsecureSkipVerify: s.InsecureSkipVerify, //nolint:gosec // only when the config asks for it
		MinVersion:         tls.VersionTLS12,
	}
}

// dial connects and logs in. TLS: "tls" is implicit TLS, "starttls" is
// mandatory STARTTLS, "none" (allowed by insecure_plaintext) is plain text.
func (c *conn) dial(ctx context.Context) error {
	c.close()
	svc, a := c.a.svc, c.a
	srv := a.cfg.SMTP.Server
	tlsConf := tlsConfig(srv)

	// go-mail leaves the connection open when EHLO, STARTTLS or AUTH fails:
	// keep it to close it then.
	var raw net.Conn
	dialFn := func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: svc.opts.SMTPTimeout}
		nc, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if srv.TLS == "tls" {
			tc := tls.Client(nc, tlsConf)
			if err := tc.HandshakeContext(ctx); err != nil {
				_ = nc.Close()
				return nil, err
			}
			nc = tc
		}
		raw = nc
		return nc, nil
	}
	opts := []gomail.Option{
		// go-mail's defaults spend two of six round trips per message on
		// a NOOP before it and an RSET after it. A kept connection that
		// died is found at MAIL FROM instead, where nothing can have been
		// delivered (classify: stale, dial again and send at once), and a
		// transaction that ended with the final dot needs no RSET; after
		// a failed one process sends RSET itself.
		gomail.WithoutNoop(),
		gomail.WithoutRset(),
		gomail.WithPort(srv.Port),
		gomail.WithTimeout(svc.opts.SMTPTimeout),
		gomail.WithDialContextFunc(dialFn),
		gomail.WithTLSConfig(tlsConf),
	}
	switch srv.TLS {
	case "tls":
		// The dial function did the handshake; WithSSL stops go-mail
		// from trying STARTTLS inside it.
		opts = append(opts, gomail.WithSSL())
	case "starttls":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if svc.opts.HeloName != "" {
		opts = append(opts, gomail.WithHELO(svc.opts.HeloName))
	}
	if auth, err := a.authenticator(ctx); err != nil {
		return err
	} else if auth != nil {
		opts = append(opts, gomail.WithSMTPAuthCustom(auth))
	}
	client, err := gomail.NewClient(srv.Host, opts...)
	if err != nil {
		return fmt.Errorf("outbox: unable to set up the SMTP client: %w", err)
	}
	sc, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		if raw != nil {
			_ = raw.Close()
		}
		if a.tokens != nil {
			// A refused token is fetched again next time.
			a.tokens.forget()
		}
		return fmt.Errorf("connect to %s: %w", net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port)), err)
	}
	c.client, c.sc, c.lastUsed = client, sc, svc.now()
	return nil
}

func (c *conn) send(msg *gomail.Msg) error {
	err := c.client.SendWithSMTPClient(c.sc, msg)
	c.lastUsed = c.a.svc.now()
	return err
}

// close says QUIT (briefly) and closes the connection.
func (c *conn) close() {
	if c.sc == nil {
		return
	}
	if c.sc.HasConnection() {
		_ = c.sc.UpdateDeadline(2 * time.Second)
		_ = c.client.CloseWithSMTPClient(c.sc)
	}
	_ = c.sc.Close()
	c.sc, c.client = nil, nil
}

// authenticator returns how the account logs in, nil when it does not.
func (a *account) authenticator(ctx context.Context) (smtp.Auth, error) {
	srv := a.cfg.SMTP.Server
	if srv.Username == "" {
		return nil, nil
	}
	auth := &authenticator{
		mode:           srv.Auth,
		user:           srv.Username,
		password:       srv.Password.Value(),
		allowPlaintext: plaintextAllowed(srv),
	}
	if a.tokens != nil && (srv.Auth == "xoauth2" || srv.Auth == "auto" || srv.Auth == "") {
		tok, err := a.tokens.get(ctx)
		if err != nil {
			return nil, err
		}
		auth.token = tok
		auth.mode = "xoauth2"
	}
	return auth, nil
}
