package replies

import (
	"math/rand"
	"reflect"
	"regexp/syntax"
	"strings"
	"testing"
)

func findREs() map[string]*findRE {
	m := map[string]*findRE{
		"returnedMarker": returnedMarkerRE, "inlineMsgID": inlineMsgIDRE, "inlineTo": inlineToRE,
		"textStatus": textStatusRE, "smtpCode": smtpCodeRE, "addr": addrRE,
	}
	for i, r := range recipientREs {
		m["recipient"+string(rune('0'+i))] = r
	}
	return m
}

// TestFindREs checks that a findRE finds what its regular expression finds,
// on texts made of generated matches, their mutations and ordinary lines,
// and on the test messages (and the corpus, when FOLLOWUPD_CORPUS is set).
func TestFindREs(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	var texts []string
	for _, m := range append(testdataMessages(t), corpusMessages(t)...) {
		texts = append(texts, string(m))
	}
	filler := []string{"Hello,", "\n", "\n", " ", "user@example.com", "550 5.1.1", "#5.1.1", "status: 4.2.2", "Final-Recipient: rfc822; a@b.example",
		"> quoted", "\t", "é", "\u212a", "\u017f", "original message", "To: x@y.example", "<a@b.example>:", "\xff"}
	for name, r := range findREs() {
		tree, err := syntax.Parse(r.re.String(), syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		check := func(s string) {
			want := r.re.FindAllStringSubmatchIndex(s, -1)
			if got := r.FindAllStringSubmatchIndex(s, -1); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: FindAll in %q: got %v, want %v", name, s, got, want)
			}
			if got, want := r.FindAllStringSubmatch(s, 2), r.re.FindAllStringSubmatch(s, 2); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: FindAll(2) in %q: got %q, want %q", name, s, got, want)
			}
			if got, want := r.FindStringSubmatch(s), r.re.FindStringSubmatch(s); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: FindStringSubmatch in %q: got %q, want %q", name, s, got, want)
			}
			if got, want := r.FindAllString(s, 3), r.re.FindAllString(s, 3); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: FindAllString(3) in %q: got %q, want %q", name, s, got, want)
			}
			if got, want := r.FindString(s), r.re.FindString(s); got != want {
				t.Fatalf("%s: FindString in %q: got %q, want %q", name, s, got, want)
			}
			if got, want := r.FindStringIndex(s), r.re.FindStringIndex(s); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: FindStringIndex in %q: got %v, want %v", name, s, got, want)
			}
			if got, want := r.MatchString(s), r.re.MatchString(s); got != want {
				t.Fatalf("%s: MatchString(%q) = %v, want %v", name, s, got, want)
			}
			if want != nil {
				found++
			}
		}
		for _, s := range texts {
			check(s)
		}
		for range 1500 {
			var b strings.Builder
			for range rng.Intn(6) {
				switch rng.Intn(3) {
				case 0:
					var g strings.Builder
					generate(rng, &g, tree)
					b.WriteString(mutate(rng, g.String()))
				default:
					b.WriteString(filler[rng.Intn(len(filler))])
				}
				b.WriteString([]string{"", " ", "\n", "\r\n", ": "}[rng.Intn(5)])
			}
			check(b.String())
		}
		if found < 150 {
			t.Errorf("%s: only %d texts had a match: the check says little", name, found)
		}
	}
}
