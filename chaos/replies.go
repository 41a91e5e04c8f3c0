package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/followupd/followupd/outbox/smtptest"
)

// reply is one reply delivered to the seller's INBOX.
type reply struct {
	MessageID string // without angle brackets
	Contact   string // the contact's address
	Answers   string // the Message-ID (sink side) it answers
	Intent    string
	Stage     string // the stage its intent's rule gives
}

// replyText is a body whose intent the classifier recognises, and the
// stage the configuration's rule for that intent sets.
type replyText struct {
	intent, stage string
	texts         []string
}

var replyTexts = []struct {
	weight int
	replyText
}{
	{6, replyText{"interested", "prospect", []string{
		"Yes, let's talk on Thursday.",
		"Sounds great, I'm interested. Could we set up a call next week?",
	}}},
	{2, replyText{"unsubscribe", "unsubscribed", []string{
		"Please remove me from your list.",
		"Unsubscribe me from these emails, please.",
	}}},
	{2, replyText{"not_interested", "not_interested", []string{
		"Not interested, thanks.",
		"No thanks, we are not interested.",
	}}},
}

func pickText(rng *rand.Rand) (intent, stage, text string) {
	total := 0
	for _, t := range replyTexts {
		total += t.weight
	}
	n := rng.IntN(total)
	for _, t := range replyTexts {
		if n < t.weight {
			return t.intent, t.stage, t.texts[rng.IntN(len(t.texts))]
		}
		n -= t.weight
	}
	panic("unreachable")
}

func (h *harness) delivered() []*reply {
	h.repliesMu.Lock()
	defer h.repliesMu.Unlock()
	return append([]*reply(nil), h.replies...)
}

// deliverReplies delivers -replies replies over LMTP, spread over the
// sending, each to a message the sink received (one reply per contact),
// From the contact, In-Reply-To and References that message.
func (h *harness) deliverReplies(ctx context.Context) error {
	if h.o.replies == 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(uint64(h.o.seed), 11))
	const pace = 10 * time.Millisecond
	var pool []smtptest.Message // received, not yet answered
	seen := 0                   // sink messages looked at
	used := map[string]bool{}   // contacts answered
	var refreshed time.Time
	for n := 0; n < h.o.replies; {
		if !h.waitSink(ctx, pace, h.sendShare(n+1, h.o.replies+1)) {
			return nil
		}
		if len(pool) == 0 || time.Since(refreshed) > time.Second {
			all := h.sink.Messages()
			for _, m := range all[seen:] {
				if len(m.To) == 1 && m.MessageID != "" && !used[strings.ToLower(m.To[0])] {
					pool = append(pool, m)
				}
			}
			seen, refreshed = len(all), time.Now()
		}
		if len(pool) == 0 {
			continue
		}
		i := rng.IntN(len(pool))
		m := pool[i]
		pool[i] = pool[len(pool)-1]
		pool = pool[:len(pool)-1]
		to := strings.ToLower(m.To[0])
		if used[to] { // a second message to the same contact (a duplicate send)
			continue
		}
		used[to] = true
		intent, stage, text := pickText(rng)
		r := &reply{MessageID: fmt.Sprintf("reply-%d-%d@contacts.chaos.test", h.o.seed, n), Contact: to, Answers: m.MessageID, Intent: intent, Stage: stage}
		subject := "Hello"
		if m.Header != nil {
			subject = m.Header.Get("Subject")
		}
		raw := fmt.Appendf(nil, "From: <%s>\r\nTo: Alice Seller <%s>\r\nSubject: Re: %s\r\n"+
			"Message-ID: <%s>\r\nIn-Reply-To: <%s>\r\nReferences: <%s>\r\nDate: %s\r\n"+
			"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+
			"%s\r\n\r\nOn %s, Alice Seller <%s> wrote:\r\n> Shall we talk?\r\n",
			to, h.dv.Username, subject, r.MessageID, m.MessageID, m.MessageID,
			time.Now().Format(time.RFC1123Z), text, time.Now().Format("Mon, 2 Jan 2006 at 15:04"), h.dv.Username)
		if err := h.deliver(ctx, raw); err != nil {
			return fmt.Errorf("reply %d: %w", n, err)
		}
		h.repliesMu.Lock()
		h.replies = append(h.replies, r)
		h.repliesMu.Unlock()
		n++
		if n%max(1, h.o.replies/10) == 0 {
			logf("%d of %d replies delivered", n, h.o.replies)
		}
	}
	return nil
}

// deliver hands a message to Dovecot over LMTP, never while Dovecot
// restarts. A failed attempt is tried again (only before DATA can it
// fail here: nothing else stops Dovecot).
func (h *harness) deliver(ctx context.Context, raw []byte) error {
	var err error
	for try := 0; try < 20; try++ {
		if err = h.deliverOnce(raw); err == nil {
			return nil
		}
		logf("LMTP delivery failed (try %d): %v", try+1, err)
		if !sleep(ctx, 500*time.Millisecond) {
			return ctx.Err()
		}
	}
	return err
}

func (h *harness) deliverOnce(raw []byte) (err error) {
	h.dvMu.Lock()
	defer h.dvMu.Unlock()
	defer func() { // dovecottest panics where a test would fail
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	h.dv.Deliver(h.dv.Username, raw)
	return nil
}
