package main

import (
	"context"
	"fmt"
	"net"
	"runtime/pprof"
	"slices"
	"strconv"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/followupd/followupd/daemon"
	"github.com/followupd/followupd/inbox"
	"github.com/followupd/followupd/inbox/dovecottest"
	"github.com/followupd/followupd/outbox/smtptest"
	"github.com/followupd/followupd/store"
)

type ingestResult struct {
	Scenario    string  `json:"scenario"`
	DB          string  `json:"db"`
	N           int     `json:"n"`
	MsgsPerS    float64 `json:"msgs_per_s"`
	RawMsgsPerS float64 `json:"raw_msgs_per_s"`
	Ratio       float64 `json:"ratio"`
	ElapsedSec  float64 `json:"elapsed_s"`
	RawElapsedS float64 `json:"raw_elapsed_s"`
	// Every timed raw FETCH (after an untimed one that warms Dovecot's
	// cache): one before the watcher, two after it; the rate is the
	// median's.
	RawRunsS []float64 `json:"raw_runs_s"`
	// The same FETCH of what the watcher asks for (the message itself,
	// not the header and envelope), after the watcher: what Dovecot
	// streams without any processing.
	RawBodyMsgsPerS float64 `json:"raw_body_msgs_per_s"`
}

// runIngest fills a real Dovecot mailbox with n messages, then times the
// inbox watcher reading it from scratch (RunOnce passes, the daemon's
// Ingestor as handler and batch handler: classify, match, store, one
// transaction per fetched batch), beside one go-imap UID FETCH of the same
// items without the body over the same mailbox.
func runIngest(e *env, n int) (any, error) {
	dv, err := dovecottest.New()
	if err != nil {
		return nil, err
	}
	defer dv.Close()
	sink, err := smtptest.New() // only to fill the config's smtp section
	if err != nil {
		return nil, err
	}
	defer sink.Close()
	_, rt, err := e.runtimeFrom(e.daemonConfig(sink, dv))
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := fillMailbox(dv, n); err != nil {
		return nil, err
	}
	e.logf("appended %d messages in %s", n, time.Since(start).Round(time.Millisecond))

	s, err := store.Open(e.ctx, e.opts)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	// Some senders are contacts, so that part of the mail matches one.
	for i := range 100 {
		if _, _, err := s.UpsertContact(e.ctx, store.Contact{Email: fmt.Sprintf("s%d@bench.example", i)}); err != nil {
			return nil, err
		}
	}
	ing := &daemon.Ingestor{Runtime: func() *daemon.Runtime { return rt }}
	w, err := inbox.New(inbox.Options{
		Store: s, Account: rt.Config.Accounts[0],
		// As the daemon wires it (daemon.watch).
		Prepare: ing.Prepare,
		Handler: func(ctx context.Context, tx *store.Tx, m inbox.Message) error {
			_, err := ing.Ingest(ctx, tx, daemon.InboundOf(m))
			return err
		},
		Batch: ing.Batch(nil),
	})
	if err != nil {
		return nil, err
	}
	defer w.Stop()

	// Dovecot caches what a FETCH asked for (dovecot.index.cache), and the
	// first FETCH of a fresh mailbox took twice as long as the next ones:
	// whichever ran first was handicapped (before this warm-up, the raw
	// FETCH, and the ratio looked better than it was). One untimed FETCH
	// warms the cache for both. The raw FETCH then takes a fraction of a
	// second, where a busy moment on a shared machine moves the rate by a
	// third: it runs once before the watcher and twice after, and the
	// median counts.
	if _, err := rawFetch(dv, n); err != nil {
		return nil, err
	}
	var raws []time.Duration
	raw := func() error {
		el, err := rawFetch(dv, n)
		if err != nil {
			return err
		}
		e.logf("raw go-imap: fetched %d in %s", n, el.Round(time.Millisecond))
		raws = append(raws, el)
		return nil
	}
	if err := raw(); err != nil {
		return nil, err
	}

	start, cpu0 := time.Now(), sampleCPU()
	total := 0
	// Labelled so that a -cpuprofile can be narrowed to the watcher
	// (go tool pprof -tagfocus phase=watch): filling the mailbox takes
	// most of a run.
	pprof.Do(e.ctx, pprof.Labels("phase", "watch"), func(ctx context.Context) {
		for total < n {
			var got int
			got, err = w.RunOnce(ctx)
			if err != nil {
				return
			}
			if got == 0 {
				err = fmt.Errorf("the watcher processed %d of %d messages", total, n)
				return
			}
			total += got
		}
	})
	if err != nil {
		return nil, err
	}
	el, cpu1 := time.Since(start), sampleCPU()
	self, others := perMsg(cpu0, cpu1, n)
	e.logf("watcher: processed %d in %s (CPU per message: %.0f µs here, %.0f µs elsewhere)", total, el.Round(time.Millisecond), self, others)
	for range 2 {
		if err := raw(); err != nil {
			return nil, err
		}
	}
	bodies, err := rawFetchBodies(dv, n)
	if err != nil {
		return nil, err
	}
	e.logf("raw go-imap, the watcher's items: fetched %d in %s", n, bodies.Round(time.Millisecond))
	runs := make([]float64, len(raws))
	for i, d := range raws {
		runs[i] = d.Seconds()
	}
	slices.Sort(raws)
	rawEl := raws[len(raws)/2]
	res := ingestResult{Scenario: "ingest", DB: e.db, N: n, MsgsPerS: float64(n) / el.Seconds(),
		RawMsgsPerS: float64(n) / rawEl.Seconds(), ElapsedSec: el.Seconds(), RawElapsedS: rawEl.Seconds(),
		RawRunsS: runs, RawBodyMsgsPerS: float64(n) / bodies.Seconds()}
	res.Ratio = res.MsgsPerS / res.RawMsgsPerS
	return res, nil
}

func imapLogin(dv *dovecottest.Dovecot) (*imapclient.Client, error) {
	c, err := imapclient.DialInsecure(net.JoinHostPort(dv.Host, strconv.Itoa(dv.IMAPPort)), nil)
	if err != nil {
		return nil, err
	}
	if err := c.Login(dv.Username, dv.Password).Wait(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// fillMailbox APPENDs n messages to INBOX over one connection: replies to
// unknown messages from 100 senders that are contacts and from strangers.
func fillMailbox(dv *dovecottest.Dovecot, n int) error {
	c, err := imapLogin(dv)
	if err != nil {
		return err
	}
	defer c.Close()
	now := time.Now()
	for i := range n {
		from := fmt.Sprintf("stranger%d@elsewhere.example", i)
		if i%10 == 0 {
			from = fmt.Sprintf("s%d@bench.example", (i/10)%100)
		}
		raw := fmt.Appendf(nil, "From: <%s>\r\nTo: seller@bench.example\r\nSubject: Re: a question %d\r\n"+
			"Message-ID: <in-%d@elsewhere.example>\r\nIn-Reply-To: <out-%d@bench.example>\r\nDate: %s\r\n"+
			"Content-Type: text/plain; charset=utf-8\r\n\r\nThanks for your note. Could you send more details about pricing?\r\n\r\n"+
			"> On Monday you wrote:\r\n> Would a short call next week help?\r\n",
			from, i, i, i, now.Format(time.RFC1123Z))
		cmd := c.Append("INBOX", int64(len(raw)), &imap.AppendOptions{Time: now})
		if _, err := cmd.Write(raw); err != nil {
			return err
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		if _, err := cmd.Wait(); err != nil {
			return fmt.Errorf("append %d: %w", i, err)
		}
	}
	return c.Logout().Wait()
}

// rawFetch reads the mailbox's metadata and headers with one UID FETCH.
func rawFetch(dv *dovecottest.Dovecot, n int) (time.Duration, error) {
	return rawFetchItems(dv, n, &imap.FetchOptions{
		UID: true, Flags: true, Envelope: true, InternalDate: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader, Peek: true}},
	})
}

// rawFetchBodies reads what the watcher asks for — flags, dates, size and
// the whole message up to 256 KiB — with one UID FETCH and nothing else.
func rawFetchBodies(dv *dovecottest.Dovecot, n int) (time.Duration, error) {
	return rawFetchItems(dv, n, &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true, Partial: &imap.SectionPartial{Size: 256 << 10}}},
	})
}

func rawFetchItems(dv *dovecottest.Dovecot, n int, items *imap.FetchOptions) (time.Duration, error) {
	start := time.Now()
	c, err := imapLogin(dv)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return 0, err
	}
	set := imap.UIDSet{}
	set.AddRange(1, 0)
	cmd := c.Fetch(set, items)
	got := 0
	for {
		data := cmd.Next()
		if data == nil {
			break
		}
		if _, err := data.Collect(); err != nil {
			return 0, err
		}
		got++
	}
	if err := cmd.Close(); err != nil {
		return 0, err
	}
	if got != n {
		return 0, fmt.Errorf("raw fetch got %d of %d", got, n)
	}
	return time.Since(start), nil
}
