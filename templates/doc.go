// Package templates loads and renders the e-mail templates that followupd sends.
//
// A template set is one directory (handed in as an fs.FS). Each message is either
//
//   - NAME.md: Markdown, rendered to an HTML part with goldmark and to a plain-text
//     part walked from the same parse tree, or
//   - NAME.txt with an optional NAME.html: the plain-text part and, if present, an
//     html/template body for the HTML part (a fragment is wrapped in a small
//     document; a file starting with <!doctype or <html is used as it is).
//
// NAME.md and NAME.txt start with YAML front matter between "---" lines holding
// subject (required, itself a template), and optionally preheader and from_name.
// Files whose names start with "." or "_" are skipped (drafts, notes).
//
// Bodies and front-matter values are Go templates over Data. Besides text/template's
// builtins they may call:
//
//	default FALLBACK VALUE   VALUE, or FALLBACK when VALUE is empty: {{ .Contact.FirstName | default "there" }}
//	firstName NAME           the name to greet by: "DR. JANE DOE" → "Jane"
//	title / upper / lower    case changes
//	cta LABEL URL            a call to action: a styled button in HTML, "LABEL: URL" in text;
//	                         URL must be http(s) with a host or mailto, anything else fails
//	unsubscribeURL           Data.UnsubscribeURL (fails when empty)
//	date LAYOUT TIME         TIME in the contact's zone; LAYOUT is a Go layout or one of
//	                         day ("Monday 2 January"), weekday, date, long, short, us, iso, time, kitchen
//	weekday TIME             "Monday", in the contact's zone
//	addDays N TIME           TIME plus N calendar days: {{ .Now | addDays 2 | weekday }}
//	spin "a|b|c"             one option, the same for the same Data.Seed every time
//	field "name"             a custom field (Contact.Fields)
//
// The package is pure: it reads only the fs.FS it is given, never the clock (Data.Now
// is injected) and never the network, so previews, tests and the daemon all render
// the same bytes for the same input.
//
// Three promises shape the design:
//
//   - Missing data never becomes a hole in a sent mail. Every action that prints a
//     value is rewritten at load time to check what it prints: an empty contact field
//     fails Render with FILE:LINE:COL and the field's name unless the action routes it
//     through default (or sits inside an {{ if }} or {{ with }} that tested it).
//   - Contact data never becomes markup. In Markdown bodies every printed value is
//     backslash-escaped before goldmark sees it, and goldmark runs without raw HTML
//     or autolinking; in HTML bodies html/template escapes by context.
//   - Header-bound values (subject, preheader, from_name) are always one line.
package templates
