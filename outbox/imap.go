package outbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	gomail "github.com/wneessen/go-mail"

	"github.com/followupd/followupd/store"
)

// imapSession is a logged-in IMAP connection bounded by the IMAP timeout.
type imapSession struct {
	c    *imapclient.Client
	stop func() bool
}

func (s *imapSession) close() {
	s.stop()
	_ = s.c.Logout().Wait()
	_ = s.c.Close()
}

// dialIMAP connects to the account's IMAP server and logs in. The session
// is closed when ctx ends.
func (s *Service) dialIMAP(ctx context.Context, a *account) (*imapSession, error) {
	srv := a.cfg.IMAP.Server
	addr := net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port))
	opts := &imapclient.Options{
		TLSConfig: tlsConfig(srv),
		Dialer:    &net.Dialer{Timeout: s.opts.IMAPTimeout},
	}
	var (
		c   *imapclient.Client
		err error
	)
	switch srv.TLS {
	case "tls":
		c, err = imapclient.DialTLS(addr, opts)
	case "starttls":
		c, err = imapclient.DialStartTLS(addr, opts)
	default:
		c, err = imapclient.DialInsecure(addr, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("imap: connect to %s: %w", addr, err)
	}
	sess := &imapSession{c: c, stop: context.AfterFunc(ctx, func() { _ = c.Close() })}
	fail := func(err error) (*imapSession, error) {
		sess.stop()
		_ = c.Close()
		return nil, err
	}
	if err := c.WaitGreeting(); err != nil {
		return fail(fmt.Errorf("imap: %s: %w", addr, err))
	}
	if srv.Username == "" {
		return fail(errors.New("imap: no username"))
	}
	if srv.TLS == "none" && !plaintextAllowed(srv) {
		return fail(errPlaintextAuth)
	}
	if srv.OAuth2TokenCommand != "" {
		tok, err := a.imapTokenSource().get(ctx)
		if err != nil {
			return fail(err)
		}
		if err := c.Authenticate(xoauth2Client{user: srv.Username, token: tok}); err != nil {
			a.imapTokenSource().forget()
			return fail(fmt.Errorf("imap: log in as %s: %w", srv.Username, err))
		}
	} else if err := c.Login(srv.Username, srv.Password.Value()).Wait(); err != nil {
		return fail(fmt.Errorf("imap: log in as %s: %w", srv.Username, err))
	}
	return sess, nil
}

func (a *account) imapTokenSource() *tokenSource {
	a.imapTokensOnce.Do(func() {
		a.imapTokens = &tokenSource{command: a.cfg.IMAP.OAuth2TokenCommand,
			timeout: a.svc.opts.TokenTimeout, ttl: a.svc.opts.TokenTTL, now: a.svc.opts.Now}
	})
	return a.imapTokens
}

// commonSentNames are tried, in order, when the server marks no mailbox
// \Sent.
var commonSentNames = []string{"Sent", "Sent Items", "Sent Messages", "Sent Mail", "[Gmail]/Sent Mail", "INBOX.Sent", "INBOX/Sent"}

// sentFolder is the configured sent_folder, else the mailbox the server
// marks \Sent (RFC 6154), else one with a usual name.
func (s *Service) sentFolder(a *account, c *imapclient.Client) (string, error) {
	if name := a.cfg.IMAP.SentFolder; name != "" {
		return name, nil
	}
	var opts *imap.ListOptions
	if caps := c.Caps(); caps.Has(imap.CapSpecialUse) || caps.Has(imap.CapIMAP4rev2) || caps.Has(imap.CapListExtended) {
		opts = &imap.ListOptions{ReturnSpecialUse: true}
	}
	list, err := c.List("", "*", opts).Collect()
	if err != nil {
		return "", fmt.Errorf("imap: list mailboxes: %w", err)
	}
	names := map[string]bool{}
	for _, mb := range list {
		for _, attr := range mb.Attrs {
			if strings.EqualFold(string(attr), string(imap.MailboxAttrSent)) {
				return mb.Mailbox, nil
			}
		}
		names[mb.Mailbox] = true
	}
	for _, n := range commonSentNames {
		if names[n] {
			return n, nil
		}
	}
	return "", errors.New("imap: no Sent folder (none is marked \\Sent): set imap.sent_folder")
}

// findInSent opens the account's Sent folder read-only (EXAMINE) and
// searches it for each row's Message-ID; found rows map to the copy's
// internal date.
func (s *Service) findInSent(ctx context.Context, a *account, rows []store.MessageOut) (map[int64]time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.IMAPTimeout)
	defer cancel()
	sess, err := s.dialIMAP(ctx, a)
	if err != nil {
		return nil, err
	}
	defer sess.close()
	c := sess.c
	folder, err := s.sentFolder(a, c)
	if err != nil {
		return nil, err
	}
	if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return nil, fmt.Errorf("imap: examine %s: %w", folder, err)
	}
	found := map[int64]time.Time{}
	for _, m := range rows {
		id := strings.Trim(m.MessageID, "<>")
		data, err := c.UIDSearch(&imap.SearchCriteria{
			Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: "<" + id + ">"}},
		}, nil).Wait()
		if err != nil {
			return nil, fmt.Errorf("imap: search %s for %s: %w", folder, id, err)
		}
		uids := data.AllUIDs()
		if len(uids) == 0 {
			continue
		}
		at := s.now()
		if msgs, err := c.Fetch(imap.UIDSetNum(uids[0]), &imap.FetchOptions{InternalDate: true}).Collect(); err == nil &&
			len(msgs) > 0 && !msgs[0].InternalDate.IsZero() {
			at = msgs[0].InternalDate
		}
		found[m.ID] = at
	}
	return found, nil
}

// appendToSent appends the exact bytes that were sent to the Sent folder,
// marked \Seen.
func (s *Service) appendToSent(ctx context.Context, a *account, msg *gomail.Msg, sentAt time.Time) error {
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		return fmt.Errorf("render the copy: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.IMAPTimeout)
	defer cancel()
	sess, err := s.dialIMAP(ctx, a)
	if err != nil {
		return err
	}
	defer sess.close()
	folder, err := s.sentFolder(a, sess.c)
	if err != nil {
		return err
	}
	cmd := sess.c.Append(folder, int64(buf.Len()), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}, Time: sentAt})
	if _, err := cmd.Write(buf.Bytes()); err != nil {
		_ = cmd.Close()
		return fmt.Errorf("imap: append to %s: %w", folder, err)
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("imap: append to %s: %w", folder, err)
	}
	if _, err := cmd.Wait(); err != nil {
		return fmt.Errorf("imap: append to %s: %w", folder, err)
	}
	return nil
}
