package replies

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkClassify classifies a mix of typical messages: human replies in
// several charsets, an auto-reply and bounces (DSN, Exim, qmail).
func BenchmarkClassify(b *testing.B) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	var msgs [][]byte
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			b.Fatal(err)
		}
		msgs = append(msgs, raw)
	}
	if len(msgs) == 0 {
		b.Fatal("no test messages")
	}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Classify(msgs[i%len(msgs)], now)
	}
}

// BenchmarkClassifyKinds reports the cost per kind of message.
func BenchmarkClassifyKinds(b *testing.B) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, name := range []string{"reply-en.eml", "cp1252.eml", "autoreply-nl.eml", "bounce-dsn-headers.eml", "bounce-exim.eml"} {
		raw, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				Classify(raw, now)
			}
		})
	}
}
