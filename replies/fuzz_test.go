package replies

import (
	"os"
	"path/filepath"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzClassify feeds arbitrary bytes to the classifier. It calls the
// unexported classify, which has no recover, so that a panic fails the run
// instead of being hidden by Classify's last line of defence.
func FuzzClassify(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("From: a@b.example\nSubject: Re: x\nIn-Reply-To: <1@x>\n\nNot right now, ping me in March.\n> quoted"))
	f.Add([]byte("Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; x@y.example\nAction: failed\nStatus: 5.1.1\n--b--\n"))
	f.Add([]byte("Content-Type: text/html\n\n<blockquote><div class=gmail_quote><hr><br>&amp;&#x41;"))
	f.Add([]byte("no header at all\n\nOn Mon, Nov 2, 2026 Sam wrote:\n> hi"))
	rules := DefaultRules()
	base := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw []byte) {
		res := rules.classify(raw, base)
		switch res.Kind {
		case KindBounce, KindAutoReply, KindReply, KindOther:
		default:
			t.Fatalf("unknown kind %q", res.Kind)
		}
		for _, s := range []string{res.Text, res.Subject, res.From, res.Recipient, res.Referral} {
			if !utf8.ValidString(s) {
				t.Fatalf("invalid UTF-8 in result: %q", s)
			}
		}
		if !res.ReturnDate.IsZero() && !res.ReturnDate.After(res.Date) && !res.Date.IsZero() {
			t.Fatalf("return date %v not after message date %v", res.ReturnDate, res.Date)
		}
		_ = VisibleText(string(raw))
	})
}
