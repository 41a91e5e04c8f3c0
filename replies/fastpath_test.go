package replies

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"math/rand"
	netmail "net/mail"
	netproto "net/textproto"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// The fast paths for common header forms (parseCommonDate, simpleAddresses,
// simpleMsgIDs) must give what the general parsers give wherever they accept
// the input. These tests check that on generated field values.

func TestParseCommonDate(t *testing.T) {
	for _, loc := range []string{"UTC", "Europe/Amsterdam", "America/New_York", "Asia/Kolkata"} {
		l, err := time.LoadLocation(loc)
		if err != nil {
			t.Skipf("no zone data: %v", err)
		}
		saved := time.Local
		time.Local = l
		checkCommonDates(t, loc)
		time.Local = saved
	}
}

func checkCommonDates(t *testing.T, loc string) {
	rng := rand.New(rand.NewSource(1))
	// usually the first, a well-formed choice; now and then one of the others
	pick := func(s ...string) string {
		if rng.Intn(4) > 0 {
			return s[0]
		}
		return s[rng.Intn(len(s))]
	}
	num := func(n int) string {
		return pick(fmt.Sprintf("%02d", rng.Intn(n)), fmt.Sprint(rng.Intn(n)), fmt.Sprintf("%02d", rng.Intn(100)), "x", "123")
	}
	accepted := 0
	for range 20000 {
		v := pick("Mon, ", "", "Tue, ", "Sun,", "mon, ", "Xyz, ", " Fri, ", "Sat,  ") +
			pick(fmt.Sprint(1+rng.Intn(31)), fmt.Sprintf("%02d", rng.Intn(33)), "0", "123", "x") + pick(" ", "  ", "") +
			pick([]string{"Jan", "Feb", "Mar", "Apr", "Jun", "Sep", "Nov", "Dec"}[rng.Intn(8)], "jan", "Foo", "JAN") + pick(" ", "  ") +
			pick(fmt.Sprint(1990+rng.Intn(40)), "2024", "26", "0001", "20x6", "20266") + " " +
			num(24) + ":" + num(60) + pick(":"+num(60), "", ":07.5", ":7") + pick(" ", "  ", "") +
			pick([]string{"+0000", "-0000", "+0100", "+0200", "-0500", "-0400", "+0530", "+1400"}[rng.Intn(8)],
				"+2400", "+0061", "GMT", "EST", "+01:00", "") +
			pick("", " ", " (CET)", " (a(b)c)", " (x", " junk", "(EDT) (x)", "\r\n (CET)", " \\(")
		got, ok := parseCommonDate(v)
		if !ok {
			continue
		}
		accepted++
		want, err := netmail.ParseDate(v)
		if err != nil {
			t.Fatalf("%s: parseCommonDate accepts %q, net/mail does not: %v", loc, v, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: %q: got %v, net/mail gives %v", loc, v, got, want)
		}
	}
	t.Logf("%s: %d dates took the fast path", loc, accepted)
	if accepted < 500 {
		t.Errorf("%s: only %d dates took the fast path", loc, accepted)
	}
}

func TestSimpleAddresses(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	words := []string{"a", "Sam", "b.c", "x_y", "o'neil", "+tag", "-x-", "example.com", "j.", ".k"}
	odd := []string{".", "..", "@", " ", "\t", "<", ">", ",", "\"", "(c)", "=?utf-8?q?x?=", "é", ":", ";", "[1.2.3.4]", "\\", ""}
	word := func() string {
		if rng.Intn(6) == 0 {
			return odd[rng.Intn(len(odd))]
		}
		return words[rng.Intn(len(words))]
	}
	accepted := 0
	for range 200000 {
		var b strings.Builder
		for i := range 1 + rng.Intn(3) {
			if i > 0 {
				b.WriteString([]string{",", ", ", " ,", ",,", ", ,"}[rng.Intn(5)])
			}
			spec := word() + word() + "@" + word() + "." + word()
			switch rng.Intn(4) {
			case 0:
				b.WriteString(spec)
			case 1:
				b.WriteString("<" + spec + ">")
			case 2:
				b.WriteString(word() + " " + word() + " <" + spec + ">")
			case 3:
				b.WriteString(word() + word() + "<" + spec + ">" + word())
			}
		}
		v := b.String()
		got, ok := simpleAddresses(v)
		if !ok {
			continue
		}
		accepted++
		var h mail.Header
		h.Set("To", v)
		list, err := h.AddressList("To")
		if err != nil {
			t.Fatalf("simpleAddresses accepts %q, the address parser does not: %v", v, err)
		}
		var want []string
		for _, a := range list {
			want = append(want, strings.ToLower(a.Address))
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %q, the address parser gives %q", v, got, want)
		}
	}
	t.Logf("%d address lists took the fast path", accepted)
	if accepted < 10000 {
		t.Errorf("only %d address lists took the fast path", accepted)
	}
}

func TestSimpleMsgIDs(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	words := []string{"a", "1.2", "x-y", "abc.def", ".", "$%", "a..b"}
	odd := []string{"<", ">", "@", " ", "\t", "[1]", "(c)", ",", "\"", "é", ""}
	word := func() string {
		if rng.Intn(6) == 0 {
			return odd[rng.Intn(len(odd))]
		}
		return words[rng.Intn(len(words))]
	}
	accepted := 0
	for range 200000 {
		var b strings.Builder
		for range 1 + rng.Intn(4) {
			b.WriteString([]string{"", " ", "  ", "\t"}[rng.Intn(4)])
			b.WriteString("<" + word() + word() + "@" + word() + word() + ">")
		}
		b.WriteString([]string{"", " ", "x", " (c)"}[rng.Intn(4)])
		v := b.String()
		got, ok := simpleMsgIDs(v)
		if !ok {
			continue
		}
		accepted++
		var h mail.Header
		h.Set("References", v)
		want, err := h.MsgIDList("References")
		if err != nil {
			t.Fatalf("simpleMsgIDs accepts %q, the msg-id parser does not: %v", v, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %q, the msg-id parser gives %q", v, got, want)
		}
	}
	t.Logf("%d id lists took the fast path", accepted)
	if accepted < 10000 {
		t.Errorf("only %d id lists took the fast path", accepted)
	}
}

// readHeaderLenient is parseHeaderLenient as it was first written: the
// cleaned block read by go-message's ReadHeader. The header type must answer
// as that Header does.
func readHeaderLenient(b []byte) textproto.Header {
	var clean bytes.Buffer
	kept := false
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			break
		}
		switch {
		case line[0] == ' ' || line[0] == '\t':
			if kept {
				clean.Write(line)
				clean.WriteByte('\n')
			}
		case isHeaderLine(line):
			clean.Write(line)
			clean.WriteByte('\n')
			kept = true
		case kept && paramLineRE.Match(line):
			clean.WriteByte(' ')
			clean.Write(line)
			clean.WriteByte('\n')
		default:
			kept = false
		}
	}
	clean.WriteByte('\n')
	h, _ := textproto.ReadHeader(bufio.NewReader(&clean))
	return h
}

var dumpKeys = []string{"From", "To", "Subject", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition",
	"X-A", "Received", "Key", "Bad Key", "É", "Message-Id"}

func dumpGoMessage(h textproto.Header) string {
	var b strings.Builder
	fmt.Fprintf(&b, "len=%d\n", h.Len())
	for f := h.Fields(); f.Next(); {
		fmt.Fprintf(&b, "%q %q\n", f.Key(), f.Value())
	}
	for _, k := range dumpKeys {
		fmt.Fprintf(&b, "%s=%q %v\n", k, h.Get(k), h.Has(k))
	}
	return b.String()
}

func dumpHeader(h header) string {
	var b strings.Builder
	fmt.Fprintf(&b, "len=%d\n", h.Len())
	for i, f := range h.fields {
		fmt.Fprintf(&b, "%q %q\n", f.key, fieldValue(h.raw(i)))
	}
	for _, k := range dumpKeys {
		k := netproto.CanonicalMIMEHeaderKey(k)
		fmt.Fprintf(&b, "%s=%q %v\n", k, h.Get(k), h.Has(k))
	}
	return b.String()
}

func TestParseHeaderLenient(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	lines := []string{"From: a@b.example", "To: c@d.example", "Subject: hi", "subject :  x  ", "X-A: 1", "x-a:2",
		"Content-Type: multipart/mixed;", "boundary=\"b\"", " folded", "\tfolded\t", "  ", "no colon here",
		"Received: from x\r", "Bad Key: v", ":empty", "X-A:", "\r\r", "Key\t: v", "é: x", "From: <z@y>\r\r",
		"content-transfer-encoding: base64 ", "Content-Disposition: attachment", " \r", "Key: a\rb \r"}
	files := testdataMessages(t)
	for range 8000 {
		var b strings.Builder
		for range rng.Intn(12) {
			b.WriteString(lines[rng.Intn(len(lines))])
			b.WriteString([]string{"\n", "\r\n", "\n"}[rng.Intn(3)])
		}
		if rng.Intn(4) == 0 {
			b.WriteString("\nbody")
		}
		in := []byte(b.String())
		if rng.Intn(10) == 0 && len(files) > 0 {
			in = files[rng.Intn(len(files))]
		}
		h, want := parseHeaderLenient(in), readHeaderLenient(in)
		if got, want := dumpHeader(h), dumpGoMessage(want); got != want {
			t.Fatalf("%q:\ngot:\n%s\nReadHeader gives:\n%s", in, got, want)
		}
		e := h.entityHeader()
		for _, k := range []string{"Content-Type", "Content-Transfer-Encoding", "Content-Disposition"} {
			if got, want := e.Get(k), want.Get(k); got != want {
				t.Fatalf("%q: entity header %s = %q, want %q", in, k, got, want)
			}
		}
	}
}

// TestHeaderKeysCanonical checks that the field names the package looks up
// are in canonical form, which header.Get and Has expect: the string
// literals passed to Get, Has, addresses and msgIDs, and autoReplyFlags.
func TestHeaderKeysCanonical(t *testing.T) {
	keys := append([]string(nil), autoReplyFlags...)
	collect := func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		var name string
		switch fn := call.Fun.(type) {
		case *ast.SelectorExpr:
			name = fn.Sel.Name
		case *ast.Ident:
			name = fn.Name
		}
		arg := -1
		switch name {
		case "Get", "Has":
			arg = 0
		case "addresses", "msgIDs":
			arg = 1
		}
		if arg >= 0 && arg < len(call.Args) {
			if lit, ok := call.Args[arg].(*ast.BasicLit); ok && lit.Kind == gotoken.STRING {
				k, _ := strconv.Unquote(lit.Value)
				keys = append(keys, k)
			}
		}
		return true
	}
	names, _ := filepath.Glob("*.go")
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(gotoken.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, collect)
	}
	if len(keys) < 20 {
		t.Fatalf("found only %d field names: %q", len(keys), keys)
	}
	for _, k := range keys {
		if c := netproto.CanonicalMIMEHeaderKey(k); c != k {
			t.Errorf("field name %q is not canonical: %q", k, c)
		}
	}
}
