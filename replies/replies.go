// Package replies understands incoming mail: it parses a raw RFC 5322
// message, tells bounces, auto-replies, human replies and other mail apart,
// and extracts what followupd acts on: the failed recipient and hard/soft
// class of a bounce, the return date of an auto-reply, and the visible text,
// intent, snooze date and referred address of a human reply.
//
// The package is pure: it does no I/O and reads no clock; the caller passes
// the current time. Classify never panics and never fails: input that is
// not a MIME message is read as a plain-text body.
package replies

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Kind is the kind of an incoming message.
type Kind string

// Kinds of messages.
const (
	KindBounce    Kind = "bounce"    // a non-delivery (or delay) report
	KindAutoReply Kind = "autoreply" // an automatic reply: out of office, vacation, acknowledgement
	KindReply     Kind = "reply"     // a message written by a person
	KindOther     Kind = "other"     // newsletters, notifications, receipts
)

// Intent is what a human reply asks for.
type Intent string

// Intents of human replies. Non-replies have IntentNone.
const (
	IntentNone          Intent = ""
	IntentInterested    Intent = "interested"
	IntentNotNow        Intent = "not_now"
	IntentNotInterested Intent = "not_interested"
	IntentReferral      Intent = "referral"
	IntentUnsubscribe   Intent = "unsubscribe"
	IntentOther         Intent = "other"
)

// Bounce classes, decided from the reason the server gave (with the status
// code as a fallback): a full mailbox reported with a 5.x.x code is still
// soft. An empty class is a policy or content rejection (spam, blocked,
// virus, message too big, relay or authentication failure) or an unknown
// reason.
const (
	BounceHard = "hard" // the address or domain does not exist (any more)
	BounceSoft = "soft" // transient: mailbox full or disabled, delayed, rate-limited, network or system error
)

// Result is what Classify found in a message.
type Result struct {
	Kind      Kind
	MessageID string    // of this message, without <>
	InReplyTo []string  // In-Reply-To and References ids, without <>, deduplicated, in order
	From      string    // lower-case address
	Subject   string    // decoded
	Date      time.Time // zero when missing or unreadable

	// bounce
	BounceClass       string // BounceHard, BounceSoft or "" (policy/content rejection or unknown)
	Recipient         string // failed recipient, lower-case
	Status            string // enhanced status code such as "5.1.1", when found
	OriginalMessageID string // Message-ID of the returned message, without <>

	// autoreply
	ReturnDate time.Time // first day back (midnight, in the message's zone); zero if none found

	// reply
	Intent   Intent
	Until    time.Time // not_now: the date named (midnight); zero if none
	Referral string    // referral: the referred address, lower-case, when one is named

	// Text is the visible text of a reply or auto-reply (and of other mail):
	// without quoted history and signature. Empty for bounces.
	Text string
}

// Classify parses a raw RFC 5322 message and classifies it with the default
// intent rules. Relative dates in the text ("back on Monday", "in Q2") are
// resolved against the message's Date header, or against now when the
// message has no usable Date. Bounces are recognised before auto-replies,
// auto-replies before replies.
func Classify(raw []byte, now time.Time) Result {
	return defaultRules.Classify(raw, now)
}

// Classify classifies raw with the rules r. See the package Classify.
func (r Rules) Classify(raw []byte, now time.Time) (res Result) {
	defer func() {
		// a last line of defence: the parsers below are written not to panic
		// (and are fuzzed), but one message must never take the daemon down
		if recover() != nil {
			res = Result{Kind: KindOther}
		}
	}()
	return r.classify(raw, now)
}

// Headers returns what identifies raw in a list: its Message-ID (without
// angle brackets), its first From address and its decoded Subject, read as
// Classify reads them, without classifying. A mailbox reader gets them from
// the message's own header instead of asking the server for an ENVELOPE.
func Headers(raw []byte) (messageID, from, subject string) {
	defer func() {
		if recover() != nil {
			messageID, from, subject = "", "", ""
		}
	}()
	if len(raw) > maxInput {
		raw = raw[:maxInput]
	}
	hdr, _, ok := splitHeader(stripMboxFrom(raw))
	if !ok {
		return "", "", ""
	}
	h := parseHeaderLenient(hdr)
	if ids := msgIDs(h, "Message-Id"); len(ids) > 0 {
		messageID = ids[0]
	}
	if as := addresses(h, "From"); len(as) > 0 {
		from = as[0]
	}
	return messageID, from, decodeHeader(h.Get("Subject"))
}

func (r Rules) classify(raw []byte, now time.Time) Result {
	p := parseMessage(raw)
	h := p.header
	var res Result
	fromAddr, fromRaw := "", ""
	var ownAddrs, ccAddrs []string
	if p.hasHeader {
		ids := msgIDs(h, "Message-Id")
		if len(ids) > 0 {
			res.MessageID = ids[0]
		}
		res.InReplyTo = dedup(append(msgIDs(h, "In-Reply-To"), msgIDs(h, "References")...))
		if as := addresses(h, "From"); len(as) > 0 {
			fromAddr = as[0]
		}
		fromRaw = decodeHeader(h.Get("From"))
		res.From = fromAddr
		res.Subject = decodeHeader(h.Get("Subject"))
		res.Date = headerDate(h)
		ownAddrs = append(addresses(h, "To"), addresses(h, "Delivered-To")...)
		ccAddrs = addresses(h, "Cc")
	}
	base := res.Date
	if base.IsZero() {
		base = now
	}

	bv := newBounceView(p, fromAddr, fromRaw, res.Subject)
	if bv.isBounce() {
		res.Kind = KindBounce
		bv.analyse(&res, ownAddrs)
		return res
	}

	body := mainText(p)
	threaded := len(res.InReplyTo) > 0
	if p.hasHeader && isAutoReply(h, res.Subject, bv.lowerSubject(), threaded) {
		res.Kind = KindAutoReply
		res.Text = VisibleText(body)
		res.ReturnDate = returnDate(truncate(res.Text, maxIntentText), base)
		if res.ReturnDate.IsZero() {
			// "Out of office until 4 December", "AUTO: … (returning 09/18/2014)"
			res.ReturnDate = returnDate(res.Subject, base)
		}
		return res
	}
	res.Text = VisibleText(body)
	// reports that are not failures (read receipts, delivery confirmations,
	// feedback reports), other mail from mail delivery software and, unless
	// they answer us, newsletters and notifications
	if p.reportType != "" || isReadReceipt(res.Subject, body) || bv.fromDaemon() ||
		(p.hasHeader && !threaded && isBulk(h, fromAddr)) {
		res.Kind = KindOther
		return res
	}

	res.Kind = KindReply
	referral := referredAddress(truncate(res.Text, maxIntentText), fromAddr, ownAddrs)
	ccReferral := ""
	for _, a := range ccAddrs {
		if a != fromAddr && !contains(ownAddrs, a) {
			ccReferral = a
			break
		}
	}
	head := truncate(res.Text, maxIntentText)
	intent, rule := r.compiled().intentOf(head, referral != "", ccReferral != "")
	res.Intent = intent
	switch intent {
	case IntentReferral:
		if rule != nil && rule.NeedsAddress {
			res.Referral = referral
			if res.Referral == "" && rule.CcCounts {
				res.Referral = ccReferral
			}
		} else {
			res.Referral = referral
		}
	case IntentNotNow:
		res.Until = snoozeDate(head, base)
	}
	return res
}

// maxIntentText bounds the visible text read for intent, dates and
// addresses: what a person writes in a reply is far shorter.
const maxIntentText = 16 << 10

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// mainText returns the body to read: the first non-empty text/plain part,
// else the first HTML part converted to text.
func mainText(p *parsedMessage) string {
	for _, t := range p.plain {
		if strings.TrimSpace(t) != "" {
			return t
		}
	}
	for i := range p.html {
		if s := p.htmlText(i); strings.TrimSpace(s) != "" {
			return s
		}
	}
	return ""
}

// referredAddress returns the first address in the visible text that is not
// the sender's or one of the recipients'.
func referredAddress(text, from string, own []string) string {
	for _, a := range addrRE.FindAllString(text, 16) {
		a = strings.ToLower(strings.Trim(a, ".'"))
		if a == from || contains(own, a) {
			continue
		}
		return a
	}
	return ""
}

func dedup(ids []string) []string {
	if len(ids) == 0 {
		return nil
	}
	// threads mostly name a handful of ids: a linear search then, and a map
	// only for long References fields
	var seen map[string]bool
	if len(ids) > 16 {
		seen = make(map[string]bool, len(ids))
	}
	out := ids[:0:0]
	for _, id := range ids {
		id = strings.Trim(strings.TrimSpace(id), "<>")
		if id == "" || (seen == nil && contains(out, id)) || seen[id] {
			continue
		}
		if seen != nil {
			seen[id] = true
		}
		out = append(out, id)
	}
	return out
}
