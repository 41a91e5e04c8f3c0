package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/followupd/followupd/inbox/imaptest"
	"github.com/followupd/followupd/outbox/smtptest"
)

// Behaviour is what a demo prospect does with the first message they get.
type Behaviour string

// The scripted behaviours.
const (
	Interested  Behaviour = "interested"    // replies yes, let's talk
	NotNow      Behaviour = "not_now"       // replies: come back in March
	OutOfOffice Behaviour = "out_of_office" // an auto-reply, back in ten days
	Bounce      Behaviour = "bounce"        // the address does not exist: a DSN
	Unsubscribe Behaviour = "unsubscribe"   // please remove me from your list
	Referral    Behaviour = "referral"      // names a colleague
)

// Prospect is a demo contact with a scripted reaction.
type Prospect struct {
	Email, FirstName, LastName, Company, Timezone string
	Behaviour                                     Behaviour
	// Lang is the language of an Interested answer: "nl" or "en".
	Lang string
	// After is how long (demo time) after receiving the first message
	// the reaction arrives.
	After time.Duration
	// Colleague is the address a Referral names.
	Colleague, ColleagueName string
}

// Prospects are the demo's scripted contacts, added to the example's.
var Prospects = []Prospect{
	{Email: "lotte@bloemenbakker.example", FirstName: "Lotte", LastName: "Bakker", Company: "Bloemen Bakker", Timezone: "Europe/Amsterdam",
		Behaviour: Interested, Lang: "nl", After: 2*time.Hour + 13*time.Minute},
	{Email: "tom@harrisjoinery.example", FirstName: "Tom", LastName: "Harris", Company: "Harris Joinery", Timezone: "Europe/London",
		Behaviour: NotNow, After: 26 * time.Hour},
	{Email: "sabine.weber@weber-moebel.example", FirstName: "Sabine", LastName: "Weber", Company: "Weber Möbel", Timezone: "Europe/Berlin",
		Behaviour: OutOfOffice, After: 40 * time.Second},
	{Email: "p.martin@boulangerie-martin.example", FirstName: "Pierre", LastName: "Martin", Company: "Boulangerie Martin", Timezone: "Europe/Paris",
		Behaviour: Bounce, After: 5 * time.Second},
	{Email: "claire@lefevre-conseil.example", FirstName: "Claire", LastName: "Lefèvre", Company: "Lefèvre Conseil", Timezone: "Europe/Paris",
		Behaviour: Unsubscribe, After: 4*time.Hour + 41*time.Minute},
	{Email: "mark@jansen-installatie.example", FirstName: "Mark", LastName: "Jansen", Company: "Jansen Installatietechniek", Timezone: "Europe/Amsterdam",
		Behaviour: Referral, After: 6*time.Hour + 7*time.Minute,
		Colleague: "eva.smit@jansen-installatie.example", ColleagueName: "Eva Smit"},
}

// referred are the colleagues named by Referral prospects: they become
// leads through the rules, get the intro, and answer it with interest.
func referred() map[string]Prospect {
	out := map[string]Prospect{}
	for _, p := range Prospects {
		if p.Behaviour == Referral {
			first, last, _ := strings.Cut(p.ColleagueName, " ")
			out[p.Colleague] = Prospect{Email: p.Colleague, FirstName: first, LastName: last, Company: p.Company,
				Timezone: p.Timezone, Behaviour: Interested, Lang: "en", After: 27 * time.Hour}
		}
	}
	return out
}

// World is the demo's mail: an SMTP server that receives what the daemon
// sends and files each message in its recipient's mailbox, prospects who
// answer by their scripts, and the seller's IMAP server where the answers
// arrive.
type World struct {
	SMTP  *smtptest.Server
	IMAP  *imaptest.Server
	Clock *Clock
	// Seller is the account's From address; answers are addressed to it.
	Seller string

	scripts map[string]Prospect // lower-case address → script

	mu        sync.Mutex
	mailboxes map[string][]smtptest.Message // lower-case recipient → received
	reacted   map[string]bool
	pending   []pendingMessage
	seen      int
}

type pendingMessage struct {
	due  time.Time // demo time
	from string
	raw  func(now time.Time) []byte
}

// NewWorld starts the two servers.
func NewWorld(clock *Clock, seller string) (*World, error) {
	s, err := smtptest.New()
	if err != nil {
		return nil, fmt.Errorf("smtp: %w", err)
	}
	im, err := imaptest.New()
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("imap: %w", err)
	}
	w := &World{SMTP: s, IMAP: im, Clock: clock, Seller: seller, scripts: map[string]Prospect{},
		mailboxes: map[string][]smtptest.Message{}, reacted: map[string]bool{}}
	for _, p := range Prospects {
		w.scripts[strings.ToLower(p.Email)] = p
	}
	for a, p := range referred() {
		w.scripts[a] = p
	}
	return w, nil
}

// Close stops the servers.
func (w *World) Close() {
	_ = w.SMTP.Close()
	_ = w.IMAP.Close()
}

// Mailbox returns what an address has received so far.
func (w *World) Mailbox(addr string) []smtptest.Message {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]smtptest.Message(nil), w.mailboxes[strings.ToLower(addr)]...)
}

// Run files new messages and delivers due answers until ctx ends.
func (w *World) Run(ctx context.Context) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.step()
	}
}

func (w *World) step() {
	msgs := w.SMTP.Messages()
	now := w.Clock.Now()
	w.mu.Lock()
	for _, m := range msgs[w.seen:] {
		for _, rcpt := range m.To {
			addr := strings.ToLower(rcpt)
			w.mailboxes[addr] = append(w.mailboxes[addr], m)
			p, ok := w.scripts[addr]
			if !ok || w.reacted[addr] {
				continue
			}
			w.reacted[addr] = true
			m := m
			w.pending = append(w.pending, pendingMessage{due: now.Add(p.After), from: addr, raw: func(at time.Time) []byte {
				return p.answer(m, w.Seller, at)
			}})
		}
	}
	w.seen = len(msgs)
	var due []pendingMessage
	keep := w.pending[:0]
	for _, pm := range w.pending {
		if !pm.due.After(now) {
			due = append(due, pm)
		} else {
			keep = append(keep, pm)
		}
	}
	w.pending = keep
	w.mu.Unlock()
	for _, pm := range due {
		at := w.Clock.Now()
		w.IMAP.DeliverAt("INBOX", pm.raw(at), at)
	}
}

// answer is the prospect's message in reaction to m, written at now.
func (p Prospect) answer(m smtptest.Message, seller string, now time.Time) []byte {
	loc, err := time.LoadLocation(p.Timezone)
	if err != nil {
		loc = time.UTC
	}
	now = now.In(loc)
	subject := decodeHeader(m.Header.Get("Subject"))
	origFrom := m.Header.Get("From")
	origDate := m.Header.Get("Date")
	name := strings.TrimSpace(p.FirstName + " " + p.LastName)
	from := (&mail.Address{Name: name, Address: p.Email}).String()
	domain := p.Email[strings.IndexByte(p.Email, '@')+1:]
	switch p.Behaviour {
	case Bounce:
		return bounce(p, m, seller, now)
	case OutOfOffice:
		back := now.AddDate(0, 0, 10)
		for back.Weekday() == time.Saturday || back.Weekday() == time.Sunday {
			back = back.AddDate(0, 0, 1)
		}
		body := fmt.Sprintf("Guten Tag,\r\n\r\nvielen Dank für Ihre Nachricht. Ich bin bis einschließlich %s nicht im Büro\r\n"+
			"und habe nur eingeschränkt Zugriff auf meine E-Mails. Ab dem %s bin ich wieder für Sie da.\r\n\r\n"+
			"In dringenden Fällen wenden Sie sich bitte an info@%s.\r\n\r\nMit freundlichen Grüßen\r\n%s\r\n%s\r\n",
			germanDate(back.AddDate(0, 0, -1)), germanDate(back), domain, name, p.Company)
		h := header{
			{"From", from}, {"To", seller}, {"Subject", mime.QEncoding.Encode("utf-8", "Abwesenheitsnotiz: "+subject)},
			{"Date", now.Format(time.RFC1123Z)}, {"Message-ID", newID(domain)},
			{"In-Reply-To", "<" + m.MessageID + ">"}, {"References", "<" + m.MessageID + ">"},
			{"Auto-Submitted", "auto-replied"}, {"X-Auto-Response-Suppress", "All"},
			{"MIME-Version", "1.0"}, {"Content-Type", "text/plain; charset=utf-8"}, {"Content-Transfer-Encoding", "8bit"},
		}
		return h.message(body)
	}
	var body string
	switch p.Behaviour {
	case Interested:
		if p.Lang == "nl" {
			body = fmt.Sprintf("Hoi Ann,\r\n\r\nJa, graag! Dit klinkt interessant, want we vergeten nu echt klanten na te bellen.\r\n"+
				"Donderdag om 10:00 past mij goed, bel me maar op 06 12345678.\r\n\r\nGroet,\r\n%s\r\n", p.FirstName)
		} else {
			body = fmt.Sprintf("Hi Ann,\r\n\r\nThanks, Mark forwarded your note. Yes, I'm interested: we lose track of\r\n"+
				"quotes all the time. Could we have a call next Tuesday afternoon?\r\n\r\nBest,\r\n%s\r\n", p.FirstName)
		}
	case NotNow:
		body = fmt.Sprintf("Hi Ann,\r\n\r\nThanks for reaching out. Not right now, I'm afraid: we're flat out with the\r\n"+
			"Christmas orders until the end of the year. Please come back in March and\r\nwe can have a proper look then.\r\n\r\nCheers,\r\n%s\r\n%s\r\n", p.FirstName, p.Company)
	case Unsubscribe:
		body = "Bonjour,\r\n\r\nMerci de me retirer de votre liste de diffusion, je ne souhaite plus recevoir\r\n" +
			"ces e-mails. Please remove me from your list.\r\n\r\nCordialement,\r\nClaire Lefèvre\r\n"
	case Referral:
		body = fmt.Sprintf("Hoi Ann,\r\n\r\nDank voor je mail. Ik ben niet de juiste persoon hiervoor: mijn collega %s\r\n"+
			"doet de inkoop en de planning. Neem contact op met haar via %s,\r\nik heb haar al even ingelicht.\r\n\r\nMet vriendelijke groet,\r\n%s\r\n%s\r\n",
			p.ColleagueName, p.Colleague, name, p.Company)
	}
	quoted := "\r\n" + quote(origDate, origFrom, textPart(m.Data))
	h := header{
		{"From", from}, {"To", seller}, {"Subject", mime.QEncoding.Encode("utf-8", reSubject(subject))},
		{"Date", now.Format(time.RFC1123Z)}, {"Message-ID", newID(domain)},
		{"In-Reply-To", "<" + m.MessageID + ">"}, {"References", references(m)},
		{"MIME-Version", "1.0"}, {"Content-Type", "text/plain; charset=utf-8"}, {"Content-Transfer-Encoding", "8bit"},
	}
	return h.message(body + quoted)
}

// bounce is the DSN the recipient's mail server sends back for m.
func bounce(p Prospect, m smtptest.Message, seller string, now time.Time) []byte {
	domain := p.Email[strings.IndexByte(p.Email, '@')+1:]
	mx := "mx1." + domain
	boundary := "=_dsn_" + randHex(8)
	var orig strings.Builder
	for _, k := range []string{"From", "To", "Subject", "Date", "Message-Id"} {
		if v := m.Header.Get(k); v != "" {
			fmt.Fprintf(&orig, "%s: %s\r\n", k, v)
		}
	}
	body := "This is a MIME-encapsulated message.\r\n\r\n" +
		"--" + boundary + "\r\n" +
		"Content-Type: text/plain; charset=us-ascii\r\n" +
		"Content-Description: Notification\r\n\r\n" +
		"This is the mail system at host " + mx + ".\r\n\r\n" +
		"I'm sorry to have to inform you that your message could not\r\n" +
		"be delivered to one or more recipients.\r\n\r\n" +
		"<" + p.Email + ">: host " + mx + "[192.0.2.25] said: 550 5.1.1\r\n" +
		"    <" + p.Email + ">: Recipient address rejected: User unknown in virtual\r\n" +
		"    mailbox table (in reply to RCPT TO command)\r\n\r\n" +
		"--" + boundary + "\r\n" +
		"Content-Type: message/delivery-status\r\n\r\n" +
		"Reporting-MTA: dns; " + mx + "\r\n" +
		"Arrival-Date: " + now.Add(-2*time.Second).Format(time.RFC1123Z) + "\r\n\r\n" +
		"Final-Recipient: rfc822; " + p.Email + "\r\n" +
		"Original-Recipient: rfc822;" + p.Email + "\r\n" +
		"Action: failed\r\n" +
		"Status: 5.1.1\r\n" +
		"Remote-MTA: dns; " + mx + "\r\n" +
		"Diagnostic-Code: smtp; 550 5.1.1 <" + p.Email + ">: Recipient address rejected:\r\n" +
		"    User unknown in virtual mailbox table\r\n\r\n" +
		"--" + boundary + "\r\n" +
		"Content-Type: text/rfc822-headers\r\n" +
		"Content-Description: Undelivered Message Headers\r\n\r\n" +
		orig.String() + "\r\n" +
		"--" + boundary + "--\r\n"
	h := header{
		{"From", "MAIL-DAEMON <MAILER-DAEMON@" + mx + ">"}, {"To", seller},
		{"Subject", "Undelivered Mail Returned to Sender"}, {"Date", now.Format(time.RFC1123Z)},
		{"Message-ID", newID(mx)}, {"Auto-Submitted", "auto-replied"},
		{"MIME-Version", "1.0"},
		{"Content-Type", `multipart/report; report-type=delivery-status; boundary="` + boundary + `"`},
	}
	return h.message(body)
}

type header [][2]string

func (h header) message(body string) []byte {
	var b strings.Builder
	for _, f := range h {
		b.WriteString(f[0] + ": " + f[1] + "\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	return []byte(b.String())
}

func reSubject(s string) string {
	if strings.HasPrefix(strings.ToLower(s), "re:") {
		return s
	}
	return "Re: " + s
}

func references(m smtptest.Message) string {
	refs := strings.Fields(m.Header.Get("References"))
	return strings.Join(append(refs, "<"+m.MessageID+">"), " ")
}

func decodeHeader(s string) string {
	if d, err := new(mime.WordDecoder).DecodeHeader(s); err == nil {
		return d
	}
	return s
}

// textPart is the plain-text part of a message the daemon sent, good enough
// to quote: the first text/plain part, quoted-printable soft breaks joined.
func textPart(raw []byte) string {
	msg, err := mail.ReadMessage(strings.NewReader(string(raw)))
	if err != nil {
		return ""
	}
	b := new(strings.Builder)
	if err := plainText(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, b); err != nil {
		return ""
	}
	return b.String()
}

func quote(date, from, text string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "On %s, %s wrote:\r\n", date, decodeHeader(from))
	for _, l := range strings.Split(strings.TrimRight(strings.ReplaceAll(text, "\r\n", "\n"), "\n"), "\n") {
		if l == "" {
			b.WriteString(">\r\n")
		} else {
			b.WriteString("> " + l + "\r\n")
		}
	}
	return b.String()
}

var germanMonths = []string{"Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November", "Dezember"}

func germanDate(t time.Time) string {
	return fmt.Sprintf("%d. %s %d", t.Day(), germanMonths[t.Month()-1], t.Year())
}

func newID(domain string) string { return "<" + randHex(12) + "@" + domain + ">" }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
