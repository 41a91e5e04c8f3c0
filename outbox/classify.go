package outbox

import (
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"

	gomail "github.com/wneessen/go-mail"
)

// verdict is what becomes of a message after a send attempt.
type verdict int

const (
	// sent: the server accepted the message.
	vSent verdict = iota
	// retry: nothing was delivered; try again later.
	vRetry
	// failed: the server refused the message for good.
	vFailed
	// bounce: the server refused the recipient for good (5.1.x); failed,
	// and the address is suppressed.
	vBounce
	// uncertain: the connection died after the final dot, before the
	// server's answer: the message may have been delivered.
	vUncertain
	// stale: the kept connection was found dead before anything was sent
	// (no answer to MAIL FROM); reconnect and send now.
	vStale
)

func (v verdict) String() string {
	return [...]string{"sent", "retry", "failed", "bounce", "uncertain", "stale"}[v]
}

// outcome is a classified send error.
type outcome struct {
	verdict verdict
	// reason goes into last_error: the phase and the server's answer.
	reason string
	// reply is the server's answer alone, e.g. "550 5.1.1 User unknown".
	reply string
	// dropConn says the connection cannot be used again.
	dropConn bool
}

var (
	enhancedRE    = regexp.MustCompile(`\b([245])\.(\d{1,3})\.(\d{1,3})\b`)
	replyRE       = regexp.MustCompile(`\b[245]\d\d\b.*`)
	quotedReplyRE = regexp.MustCompile(`\b([245]\d\d) ("(?:[^"\\]|\\.)*")`)
)

// recipientUnknown are the enhanced codes that say the recipient's address
// does not exist (RFC 3463): bad mailbox (5.1.1), bad system (5.1.2), bad
// syntax (5.1.3), moved (5.1.6), null MX (5.1.10). 5.1.7 and 5.1.8 are
// about the sender.
var recipientUnknown = []string{"5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10"}

// userUnknownText recognises a bare 550 at RCPT that means the same.
var userUnknownText = []string{"user unknown", "unknown user", "no such user", "no such recipient",
	"recipient unknown", "unknown recipient", "user not found", "mailbox not found", "does not exist"}

// classify decides what a send error means, from go-mail's *SendError: the
// phase it happened in (Reason), the SMTP code (0 when no reply came) and
// the enhanced status code.
//
// Without an SMTP reply, the phase decides. ErrSMTPDataClose is go-mail
// closing the DATA writer: flushing the last bytes and the final dot, then
// reading the answer to it (go-mail drops the flush error, so a dot that
// never left looks the same): the message may have been delivered —
// uncertain. Lost at any earlier phase (MAIL, RCPT, DATA, while writing the
// content, whose dot-stuffing cannot end the message early), nothing can
// have been delivered: retry. A 4xx at any phase is retried; a 5xx fails; a 5.1.x recipient
// error at RCPT or after the dot (or a bare 550 "user unknown" at RCPT) is a
// hard bounce. Anything else is retried, never dropped.
func classify(err error, msg *gomail.Msg) outcome {
	if err == nil {
		return outcome{verdict: vSent}
	}
	text := err.Error()
	var se *gomail.SendError
	if !errors.As(err, &se) {
		return outcome{verdict: vRetry, reason: text, dropConn: true}
	}
	if msg != nil && msg.IsDelivered() {
		// Accepted; only the RSET after it failed.
		return outcome{verdict: vSent, reason: text, dropConn: true}
	}
	reply := smtpReply(se)
	code := se.ErrorCode()
	o := outcome{reason: text, reply: reply}
	if code != 0 && reply != "" {
		o.reason = se.Reason.String() + ": " + reply
	}
	switch se.Reason {
	case gomail.ErrConnCheck:
		return outcome{verdict: vStale, reason: text, dropConn: true}
	case gomail.ErrGetSender, gomail.ErrGetRcpts, gomail.ErrNoUnencoded:
		// The message itself cannot be sent.
		o.verdict = vFailed
		return o
	}
	if code == 0 {
		o.dropConn = true
		if se.Reason == gomail.ErrSMTPMailFrom {
			// No answer to the first command of a transaction: the kept
			// connection had died (the client sends no NOOP first).
			o.verdict = vStale
			return o
		}
		if se.Reason == gomail.ErrSMTPDataClose {
			o.verdict = vUncertain
			return o
		}
		o.verdict = vRetry
		return o
	}
	if code == 421 {
		// The server is closing the connection.
		o.dropConn = true
	}
	esc := se.EnhancedStatusCode()
	if esc == "" {
		esc = enhancedRE.FindString(reply)
	}
	switch {
	case code >= 400 && code < 500:
		o.verdict = vRetry
	case code >= 500 && code < 600:
		o.verdict = vFailed
		switch {
		case esc == "5.4.5":
			// Gmail's "daily sending quota exceeded" is a 5xx that passes.
			o.verdict = vRetry
		case (se.Reason == gomail.ErrSMTPRcptTo || se.Reason == gomail.ErrSMTPDataClose) && slices.Contains(recipientUnknown, esc):
			o.verdict = vBounce
		case se.Reason == gomail.ErrSMTPRcptTo && (code == 550 || code == 551 || code == 553) &&
			(esc == "" || strings.HasSuffix(esc, ".0.0")) && mentionsUnknownUser(reply):
			o.verdict = vBounce
		}
	default:
		o.verdict = vRetry
	}
	return o
}

func mentionsUnknownUser(s string) bool {
	s = strings.ToLower(s)
	for _, t := range userUnknownText {
		if strings.Contains(s, t) {
			return true
		}
	}
	return false
}

// smtpReply extracts the server's answer ("550 5.1.1 User unknown") from a
// SendError's text.
func smtpReply(se *gomail.SendError) string {
	text := strings.TrimPrefix(se.Error(), se.Reason.String())
	text = strings.TrimPrefix(text, ":")
	if i := strings.Index(text, ", affected "); i >= 0 {
		text = text[:i]
	}
	// net/textproto writes a reply as `550 "5.1.1 User unknown"`.
	if m := quotedReplyRE.FindStringSubmatch(text); m != nil {
		if msg, err := strconv.Unquote(m[2]); err == nil {
			return m[1] + " " + msg
		}
	}
	if m := replyRE.FindString(text); m != "" {
		return strings.TrimSpace(m)
	}
	return strings.TrimSpace(text)
}
