package outbox

import (
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/store"
)

// ErrUnsafeHeader is returned by Build when a header value would carry a
// line break (and with it a header of its own, such as a Bcc), or a header
// name is not a valid or allowed one. Such a message is never sent.
var ErrUnsafeHeader = errors.New("outbox: unsafe header")

// BuildOptions are what Build needs besides the row and the account.
type BuildOptions struct {
	// Date is the Date header (and the DKIM signature's time); zero means
	// time.Now().
	Date time.Time
	// UnsubscribeMailto receives unsubscribe requests by mail
	// (config.Unsubscribe.Mailto); empty means the message's From address.
	UnsubscribeMailto string
	// DKIM signs the message when set; nil falls back to the account's dkim
	// section, reading its key file (relative to ConfigDir).
	DKIM *DKIMKey
	// ConfigDir resolves a relative dkim.key_file.
	ConfigDir string
	// Boundary is the multipart boundary; empty picks a random one. It is
	// fixed in the message, so that writing it again (the copy appended to
	// Sent) gives the same bytes.
	Boundary string
}

// DKIMKey is a loaded DKIM signing key.
type DKIMKey struct {
	Domain   string
	Selector string
	Key      crypto.Signer
}

// LoadDKIM reads the account's DKIM key file (PEM, RSA or Ed25519); a
// relative path is read from configDir.
func LoadDKIM(d *config.DKIM, configDir string) (*DKIMKey, error) {
	if d == nil {
		return nil, nil
	}
	path := d.KeyFile
	if path != "" && !filepath.IsAbs(path) && configDir != "" {
		path = filepath.Join(configDir, path)
	}
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("outbox: unable to read the DKIM key: %w", err)
	}
	key, err := gomail.PrivKeyFromPEM(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("outbox: unable to read the DKIM key %s: %w", path, err)
	}
	if d.Domain == "" || d.Selector == "" {
		return nil, errors.New("outbox: DKIM needs a domain and a selector")
	}
	return &DKIMKey{Domain: d.Domain, Selector: d.Selector, Key: key}, nil
}

// reservedHeaders are written by Build itself; the account's custom headers
// may not replace them.
var reservedHeaders = []string{
	"bcc", "cc", "content-transfer-encoding", "content-type", "date", "dkim-signature",
	"from", "in-reply-to", "list-unsubscribe", "list-unsubscribe-post", "message-id",
	"mime-version", "references", "return-path", "sender", "subject", "to",
}

// signedHeaders are covered by the DKIM signature when present; RFC 8058
// wants List-Unsubscribe and List-Unsubscribe-Post among them.
var signedHeaders = []string{
	"From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
	"MIME-Version", "Content-Type", "List-Unsubscribe", "List-Unsubscribe-Post",
}

// Build turns a rendered outbound row into the message to send, exactly as
// the row holds it: From and To with their names, Subject, Date, the row's
// Message-ID, In-Reply-To and References for threading, a text body (and an
// HTML alternative when the row has one), List-Unsubscribe with the row's
// https link and a mailto, List-Unsubscribe-Post for one-click, the
// account's custom headers, and a DKIM signature when configured.
//
// Any header value from the row that contains CR or LF is refused with
// ErrUnsafeHeader.
func Build(m store.MessageOut, acct *config.Account, opts BuildOptions) (*gomail.Msg, error) {
	fields := []struct{ name, value string }{
		{"subject", m.Subject}, {"to_addr", m.ToAddr}, {"to_name", m.ToName},
		{"from_addr", m.FromAddr}, {"from_name", m.FromName}, {"message_id", m.MessageID},
		{"in_reply_to", m.InReplyTo}, {"references", m.References},
		{"unsubscribe_url", m.UnsubscribeURL},
	}
	for _, f := range fields {
		if strings.ContainsAny(f.value, "\r\n") {
			return nil, fmt.Errorf("%w: %s %q contains a line break", ErrUnsafeHeader, f.name, f.value)
		}
	}
	fromAddr, fromName := m.FromAddr, m.FromName
	if fromAddr == "" && acct != nil {
		fromAddr, fromName = acct.FromAddress, acct.FromName
	}
	if strings.ContainsAny(fromName, "\r\n") {
		return nil, fmt.Errorf("%w: from_name contains a line break", ErrUnsafeHeader)
	}
	if !plainAddress(fromAddr) {
		return nil, fmt.Errorf("outbox: invalid From address %q", fromAddr)
	}
	if !plainAddress(m.ToAddr) {
		return nil, fmt.Errorf("outbox: invalid To address %q", m.ToAddr)
	}
	msgID := strings.Trim(strings.TrimSpace(m.MessageID), "<>")
	if !validMsgID(msgID) {
		return nil, fmt.Errorf("outbox: invalid Message-ID %q", m.MessageID)
	}
	if m.BodyText == "" && m.BodyHTML == "" {
		return nil, fmt.Errorf("outbox: message %s has no body", msgID)
	}

	boundary := opts.Boundary
	if boundary == "" {
		var b [15]byte
		_, _ = rand.Read(b[:])
		boundary = "fu" + hex.EncodeToString(b[:])
	}
	date := opts.Date
	if date.IsZero() {
		date = time.Now()
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent(), gomail.WithBoundary(boundary))
	// As mail.Address values: a name with quotes or non-ASCII letters is
	// quoted or encoded when written, never parsed back from text.
	msg.FromMailAddress(&mail.Address{Name: fromName, Address: fromAddr})
	msg.ToMailAddress(&mail.Address{Name: m.ToName, Address: m.ToAddr})
	msg.Subject(m.Subject)
	msg.SetDateWithValue(date)
	msg.SetMessageIDWithValue(msgID)
	if irt := msgIDList(m.InReplyTo); irt != "" {
		msg.SetGenHeader(gomail.HeaderInReplyTo, irt)
	}
	if refs := msgIDList(m.References); refs != "" {
		// One value: several would be joined with ", ".
		msg.SetGenHeader(gomail.HeaderReferences, refs)
	}

	mailto := opts.UnsubscribeMailto
	if mailto == "" {
		mailto = fromAddr
	}
	if err := setListUnsubscribe(msg, m.UnsubscribeURL, mailto); err != nil {
		return nil, err
	}

	if acct != nil {
		names := make([]string, 0, len(acct.Headers))
		for k := range acct.Headers {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			v := acct.Headers[k]
			if !validHeaderName(k) || slices.Contains(reservedHeaders, strings.ToLower(k)) {
				return nil, fmt.Errorf("%w: custom header name %q is invalid or written by followupd itself", ErrUnsafeHeader, k)
			}
			if strings.ContainsAny(v, "\r\n") {
				return nil, fmt.Errorf("%w: custom header %s contains a line break", ErrUnsafeHeader, k)
			}
			msg.SetGenHeader(gomail.Header(k), v)
		}
	}

	switch {
	case m.BodyHTML == "":
		msg.SetBodyString(gomail.TypeTextPlain, m.BodyText)
	case m.BodyText == "":
		msg.SetBodyString(gomail.TypeTextHTML, m.BodyHTML)
	default:
		msg.SetBodyString(gomail.TypeTextPlain, m.BodyText)
		msg.AddAlternativeString(gomail.TypeTextHTML, m.BodyHTML)
	}

	key := opts.DKIM
	if key == nil && acct != nil && acct.DKIM != nil {
		var err error
		if key, err = LoadDKIM(acct.DKIM, opts.ConfigDir); err != nil {
			return nil, err
		}
	}
	if key != nil {
		// A signer per message, its time fixed to the Date header, so that
		// every write of the message is the same bytes.
		signer := gomail.NewDKIMSigner(key.Domain, key.Selector, key.Key)
		signer.NowFunc = func() time.Time { return date }
		var hs []string
		for _, h := range signedHeaders {
			if present(msg, h) {
				hs = append(hs, h)
			}
		}
		signer.SignHeaders(hs...)
		msg.SetDKIM(signer)
	}
	return msg, nil
}

func present(msg *gomail.Msg, h string) bool {
	switch h {
	case "From", "To":
		return true
	case "MIME-Version", "Content-Type":
		return true
	}
	return len(msg.GetGenHeader(gomail.Header(h))) > 0
}

// setListUnsubscribe writes List-Unsubscribe with the https link and a
// mailto, and List-Unsubscribe-Post for RFC 8058 one-click.
//
// go-mail's SetListUnsubscribeOneClick validates the same way but stores
// both headers as "preformatted", which go-mail writes in map order: two
// writes of one message could then differ, and the copy appended to Sent
// would not be the bytes that were sent. Generic headers are written
// sorted, so both are set as such.
func setListUnsubscribe(msg *gomail.Msg, link, mailto string) error {
	var uris []string
	oneClick := false
	if link != "" {
		u, err := url.Parse(strings.TrimSpace(link))
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return fmt.Errorf("outbox: the unsubscribe link %q is not an http(s) URL", link)
		}
		uris = append(uris, "<"+u.String()+">")
		oneClick = u.Scheme == "https"
	}
	if mailto != "" {
		if strings.ContainsAny(mailto, "\r\n<>?") {
			return fmt.Errorf("%w: unsubscribe mailto %q", ErrUnsafeHeader, mailto)
		}
		uris = append(uris, "<mailto:"+mailto+"?subject=unsubscribe>")
	}
	if len(uris) == 0 {
		return nil
	}
	msg.SetGenHeader(gomail.HeaderListUnsubscribe, strings.Join(uris, ", "))
	if oneClick {
		msg.SetGenHeader(gomail.HeaderListUnsubscribePost, "List-Unsubscribe=One-Click")
	}
	return nil
}

// msgIDList turns stored Message-IDs (with or without angle brackets,
// separated by spaces or commas) into "<a@x> <b@y>"; invalid ones are
// dropped.
func msgIDList(s string) string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' }) {
		id := strings.Trim(f, "<>")
		if validMsgID(id) {
			out = append(out, "<"+id+">")
		}
	}
	return strings.Join(out, " ")
}

func validMsgID(id string) bool {
	at := strings.IndexByte(id, '@')
	if at <= 0 || at == len(id)-1 {
		return false
	}
	for _, r := range id {
		if r <= ' ' || r >= 127 || r == '<' || r == '>' {
			return false
		}
	}
	return true
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r >= 127 || r == ':' {
			return false
		}
	}
	return true
}

// plainAddress reports whether s is a bare address (no name, no brackets).
func plainAddress(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Name == "" && a.Address == s
}
