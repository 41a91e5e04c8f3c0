package replies

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// benchNow is the "current time" of the benchmarks.
var benchNow = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// ingestMessages builds n messages the way the ingest benchmark's
// fillMailbox (bench/ingest.go) appends them: short replies with one quoted
// line of history, one in ten from a contact, each with its own number.
func ingestMessages(n int) [][]byte {
	date := time.Date(2026, 11, 27, 9, 41, 7, 0, time.FixedZone("", 3600))
	msgs := make([][]byte, 0, n)
	for i := range n {
		from := fmt.Sprintf("stranger%d@elsewhere.example", i)
		if i%10 == 0 {
			from = fmt.Sprintf("s%d@bench.example", (i/10)%100)
		}
		msgs = append(msgs, fmt.Appendf(nil, "From: <%s>\r\nTo: seller@bench.example\r\nSubject: Re: a question %d\r\n"+
			"Message-ID: <in-%d@elsewhere.example>\r\nIn-Reply-To: <out-%d@bench.example>\r\nDate: %s\r\n"+
			"Content-Type: text/plain; charset=utf-8\r\n\r\nThanks for your note. Could you send more details about pricing?\r\n\r\n"+
			"> On Monday you wrote:\r\n> Would a short call next week help?\r\n",
			from, i, i, i, date.Format(time.RFC1123Z)))
	}
	return msgs
}

// testdataMessages reads the messages in testdata.
func testdataMessages(tb testing.TB) [][]byte {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	var msgs [][]byte
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		msgs = append(msgs, raw)
	}
	return msgs
}

// corpusMessages reads every message listed in the shared corpus's
// labels.csv and intent/labels.csv (bounces, auto-replies, human replies in
// several languages), or returns nil when FOLLOWUPD_CORPUS is not set.
func corpusMessages(tb testing.TB) [][]byte {
	dir := os.Getenv("FOLLOWUPD_CORPUS")
	if dir == "" {
		return nil
	}
	var msgs [][]byte
	for _, sub := range []string{".", "intent"} {
		labels := filepath.Join(dir, sub, "labels.csv")
		if _, err := os.Stat(labels); err != nil {
			continue
		}
		for _, row := range readCSV(tb, labels) {
			raw, err := os.ReadFile(filepath.Join(dir, sub, row["file"]))
			if err != nil {
				tb.Fatal(err)
			}
			msgs = append(msgs, raw)
		}
	}
	return msgs
}

// BenchmarkClassify reports the cost of classifying one message of a mix:
//
//   - ingest: the messages the ingest benchmark fills its mailbox with;
//   - testdata: human replies in several charsets, an auto-reply, bounces;
//   - corpus: every message of the shared corpus (FOLLOWUPD_CORPUS): real
//     bounces (DSN and older formats), auto-replies, replies with quoted
//     history, authored replies in four languages.
func BenchmarkClassify(b *testing.B) {
	sets := []struct {
		name string
		msgs [][]byte
	}{
		{"ingest", ingestMessages(100)},
		{"testdata", testdataMessages(b)},
		{"corpus", corpusMessages(b)},
	}
	for _, set := range sets {
		b.Run(set.name, func(b *testing.B) {
			if len(set.msgs) == 0 {
				b.Skip("no messages: set FOLLOWUPD_CORPUS to the shared corpus directory")
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				Classify(set.msgs[i%len(set.msgs)], benchNow)
			}
		})
	}
}

// BenchmarkClassifyKinds reports the cost per kind of message.
func BenchmarkClassifyKinds(b *testing.B) {
	for _, name := range []string{"reply-en.eml", "cp1252.eml", "autoreply-nl.eml", "bounce-dsn-headers.eml", "bounce-exim.eml"} {
		raw, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Classify(raw, benchNow)
			}
		})
	}
}
