package templates

import (
	"bufio"
	"bytes"
	"fmt"
	"html"
	"strconv"
	"strings"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	east "github.com/yuin/goldmark/extension/ast"
	"github.com/yuin/goldmark/parser"
	ghtml "github.com/yuin/goldmark/renderer/html"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// newMarkdown builds the one converter all Markdown bodies use. Raw HTML stays off
// (goldmark's default), so even the author's inline HTML is dropped: a .md body can
// produce only the markup Markdown itself describes. Linkify stays off as well,
// because it would turn a URL typed into a contact field into a live link. Hard
// wraps are on because people write mail line by line ("Best,\nJane").
func newMarkdown() goldmark.Markdown {
	return goldmark.New(
		goldmark.WithExtensions(extension.Table, extension.Strikethrough),
		goldmark.WithRendererOptions(ghtml.WithHardWraps()),
	)
}

func htmlEscape(s string) string { return html.EscapeString(s) }

// fnMarkdownEscape is appended to every action of a Markdown body, so every value
// a template prints reaches goldmark as literal text.
func fnMarkdownEscape(v any) string {
	if m, ok := v.(mdMark); ok {
		return string(m)
	}
	return escapeMarkdown(toString(v))
}

// escapeMarkdown makes s literal text wherever it lands in a Markdown paragraph.
// Every piece of Markdown and HTML syntax starts with ASCII punctuation (emphasis,
// links, images, autolinks, raw HTML, entities, code, headings, lists, quotes,
// tables), and CommonMark lets any ASCII punctuation be backslash-escaped in text,
// link text, destinations and titles alike, so escaping all of it is simpler and
// safer than knowing which character matters where. Leading whitespace is dropped
// because four spaces at the start of a block make a code block; line breaks become
// hard breaks and blank lines are dropped, so data can never start a new block.
// The one context this does not cover is a code span, where backslashes show as
// typed; that is ugly, not unsafe.
func escapeMarkdown(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	var b strings.Builder
	first := true
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if !first {
			b.WriteString("\\\n")
		}
		first = false
		for _, r := range line {
			switch {
			case r == markOpen || r == markClose || r == 0:
				// Never let data forge or break a cta placeholder.
			case r < 0x80 && isASCIIPunct(byte(r)):
				b.WriteByte('\\')
				b.WriteRune(r)
			default:
				b.WriteRune(r)
			}
		}
	}
	return b.String()
}

func isASCIIPunct(c byte) bool {
	return c >= '!' && c <= '/' || c >= ':' && c <= '@' || c >= '[' && c <= '`' || c >= '{' && c <= '~'
}

// convertMarkdown parses src once and renders both parts from the same tree, so the
// text part can never say something the HTML part does not.
func convertMarkdown(md goldmark.Markdown, src []byte, ctas []ctaLink) (htmlBody, textBody string, err error) {
	doc := md.Parser().Parse(text.NewReader(src), parser.WithContext(parser.NewContext()))
	var buf bytes.Buffer
	if err := md.Renderer().Render(&buf, src, doc); err != nil {
		return "", "", fmt.Errorf("markdown: %w", err)
	}
	htmlBody = replaceMarks(buf.String(), func(c ctaLink) string { return ctaButton(c.label, c.url) }, ctas)
	w := newTextWriter(src)
	textBody = w.block(doc)
	textBody = replaceMarks(textBody, func(c ctaLink) string { return ctaText(c.label, c.url) }, ctas)
	return htmlBody, textBody, nil
}

// replaceMarks swaps cta placeholders for their rendering. A placeholder with no
// matching cta can only come from the author's own literal text; it is dropped.
func replaceMarks(s string, render func(ctaLink) string, ctas []ctaLink) string {
	if !strings.ContainsRune(s, markOpen) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.IndexRune(s, markOpen)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		rest := s[i+len(string(markOpen)):]
		j := strings.IndexRune(rest, markClose)
		if j < 0 {
			b.WriteString(rest)
			return b.String()
		}
		if n, err := strconv.Atoi(rest[:j]); err == nil && n >= 0 && n < len(ctas) {
			b.WriteString(render(ctas[n]))
		}
		s = rest[j+len(string(markClose)):]
	}
}

// textWriter renders a goldmark tree as readable plain text: paragraphs separated by
// blank lines, lists kept with their markers, emphasis markers dropped, links as
// "text (url)".
type textWriter struct {
	src []byte
	buf *bytes.Buffer
	bw  *bufio.Writer
}

func newTextWriter(src []byte) textWriter {
	buf := &bytes.Buffer{}
	return textWriter{src: src, buf: buf, bw: bufio.NewWriter(buf)}
}

func (w textWriter) blocks(n ast.Node, sep string) string {
	var parts []string
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		if s := w.block(c); s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, sep)
}

func (w textWriter) block(n ast.Node) string {
	switch n := n.(type) {
	case *ast.Document:
		return w.blocks(n, "\n\n")
	case *ast.Paragraph, *ast.TextBlock, *ast.Heading:
		return strings.TrimRight(w.inlines(n), " \n")
	case *ast.ThematicBreak:
		return "----"
	case *ast.CodeBlock, *ast.FencedCodeBlock:
		var b strings.Builder
		lines := n.Lines()
		for i := 0; i < lines.Len(); i++ {
			seg := lines.At(i)
			b.Write(seg.Value(w.src))
		}
		return strings.TrimRight(b.String(), "\n")
	case *ast.Blockquote:
		inner := w.blocks(n, "\n\n")
		lines := strings.Split(inner, "\n")
		for i, l := range lines {
			lines[i] = strings.TrimRight("> "+l, " ")
		}
		return strings.Join(lines, "\n")
	case *ast.List:
		return w.list(n)
	case *ast.HTMLBlock:
		// Dropped from the HTML part too (raw HTML is off); keep the parts in step.
		return ""
	case *east.Table:
		var rows []string
		for r := n.FirstChild(); r != nil; r = r.NextSibling() {
			var cells []string
			for c := r.FirstChild(); c != nil; c = c.NextSibling() {
				cells = append(cells, strings.TrimSpace(w.inlines(c)))
			}
			rows = append(rows, strings.Join(cells, " | "))
		}
		return strings.Join(rows, "\n")
	}
	return w.blocks(n, "\n\n")
}

func (w textWriter) list(l *ast.List) string {
	sep := "\n\n"
	if l.IsTight {
		sep = "\n"
	}
	var items []string
	num := l.Start
	for it := l.FirstChild(); it != nil; it = it.NextSibling() {
		marker := "- "
		if l.IsOrdered() {
			marker = strconv.Itoa(num) + ". "
			num++
		}
		body := w.blocks(it, sep)
		indent := strings.Repeat(" ", len(marker))
		lines := strings.Split(body, "\n")
		for i := range lines {
			if i == 0 {
				lines[i] = marker + lines[i]
			} else if lines[i] != "" {
				lines[i] = indent + lines[i]
			}
		}
		items = append(items, strings.Join(lines, "\n"))
	}
	return strings.Join(items, sep)
}

func (w textWriter) inlines(n ast.Node) string {
	var b strings.Builder
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		w.inline(&b, c)
	}
	return b.String()
}

func (w textWriter) inline(b *strings.Builder, n ast.Node) {
	switch n := n.(type) {
	case *ast.Text:
		b.WriteString(w.decode(n.Segment.Value(w.src)))
		if n.SoftLineBreak() || n.HardLineBreak() {
			b.WriteByte('\n')
		}
	case *ast.String:
		if n.IsCode() || n.IsRaw() {
			b.Write(n.Value)
		} else {
			b.WriteString(w.decode(n.Value))
		}
	case *ast.CodeSpan:
		for c := n.FirstChild(); c != nil; c = c.NextSibling() {
			if t, ok := c.(*ast.Text); ok {
				b.Write(t.Segment.Value(w.src))
			} else if s, ok := c.(*ast.String); ok {
				b.Write(s.Value)
			}
		}
	case *ast.Link:
		label := strings.TrimSpace(w.inlines(n))
		dest := linkDest(n.Destination)
		switch {
		case dest == "" || ghtml.IsDangerousURL([]byte(dest)):
			b.WriteString(label)
		case label == "" || label == dest:
			b.WriteString(dest)
		case "mailto:"+label == dest:
			b.WriteString(label)
		default:
			b.WriteString(label + " (" + dest + ")")
		}
	case *ast.AutoLink:
		b.Write(n.Label(w.src))
	case *ast.Image:
		b.WriteString(w.inlines(n))
	case *ast.RawHTML:
		// Omitted in the HTML part as well.
	default:
		for c := n.FirstChild(); c != nil; c = c.NextSibling() {
			w.inline(b, c)
		}
	}
}

// linkDest resolves a destination the way goldmark's renderer does before it
// escapes it for the href attribute.
func linkDest(d []byte) string {
	d = util.UnescapePunctuations(d)
	d = util.ResolveNumericReferences(d)
	d = util.ResolveEntityNames(d)
	return string(d)
}

// decode resolves backslash escapes and entities exactly as goldmark's HTML
// writer does, by running that writer and undoing its HTML escaping; a hand-written
// decoder would sooner or later disagree with it on a corner case.
func (w textWriter) decode(seg []byte) string {
	w.buf.Reset()
	ghtml.DefaultWriter.Write(w.bw, seg)
	_ = w.bw.Flush()
	return html.UnescapeString(w.buf.String())
}
