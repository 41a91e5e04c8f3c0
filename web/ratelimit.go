package web

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// limiter is a token bucket per client address: rate tokens a second up to
// burst. It guards the endpoints anyone can reach (unsubscribe links) or
// guess at (the login form).
type limiter struct {
	now   func() time.Time
	rate  float64
	burst float64

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastPrune time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxBuckets bounds the memory a flood of distinct addresses can take;
// past it, full buckets are dropped (they hold nothing a new one would
// not).
const maxBuckets = 10000

func newLimiter(now func() time.Time, rate, burst float64) *limiter {
	return &limiter{now: now, rate: rate, burst: burst, buckets: map[string]*bucket{}}
}

// allow takes a token for the request's client, reporting whether one was
// left.
func (l *limiter) allow(r *http.Request) bool {
	key, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		key = r.RemoteAddr
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buckets) >= maxBuckets || now.Sub(l.lastPrune) > time.Minute {
		l.prune(now)
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *limiter) prune(now time.Time) {
	l.lastPrune = now
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= maxBuckets {
		// A flood from more addresses than the cap: forgetting them all
		// costs each at most one burst.
		clear(l.buckets)
	}
}
