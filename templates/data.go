package templates

import (
	"strings"
	"time"
)

// Data is everything a template may refer to. Templates see it as dot: .Contact,
// .Sender, .Sequence, .Step, .Now and .UnsubscribeURL.
type Data struct {
	Contact  Contact
	Sender   Sender
	Sequence string
	// Step is the 1-based step of the sequence being sent.
	Step int
	// Now is the injected clock; templates never read the real one, so a preview
	// and the real send say the same thing.
	Now time.Time
	// UnsubscribeURL is the one-click link for this contact; unsubscribeURL fails
	// when it is empty rather than print a dead link.
	UnsubscribeURL string
	// Seed makes spin choices stable per contact; "" means the contact's e-mail.
	Seed string
}

// Contact is the recipient as the store knows them. Empty string fields are treated
// as missing by the checks described in the package doc.
type Contact struct {
	Email     string
	FirstName string
	LastName  string
	Company   string
	Stage     string
	// TimeZone is the contact's zone for date and weekday. It is a *time.Location,
	// not a name, because resolving a name reads the zone database and this package
	// does no I/O; nil means Data.Now's location.
	TimeZone *time.Location
	// Birthday is a calendar date: only its year, month and day are used.
	Birthday time.Time
	// Fields holds custom fields; read them with field "name" or .Contact.Fields.name.
	Fields map[string]string
}

// Name is "FirstName LastName" with whichever parts exist, for templates that want
// the full name.
func (c Contact) Name() string {
	return strings.TrimSpace(c.FirstName + " " + c.LastName)
}

// Sender is the person the mail comes from.
type Sender struct {
	Name      string
	Email     string
	Company   string
	Signature string
}

// Rendered is one message ready for the outbox.
type Rendered struct {
	// Subject, Preheader and FromName are single-line: every run of whitespace,
	// including CR and LF, is one space, so they are safe to put in headers.
	Subject   string
	Preheader string
	// FromName is the from_name override from the front matter, or "".
	FromName string
	// Text is the plain-text part, LF line endings, ending in one newline.
	Text string
	// HTML is a complete HTML document, or "" for a NAME.txt without NAME.html.
	HTML string
	// HasCTA reports whether the message ends in a call to action: a cta, a link
	// other than the unsubscribe link, or a question in its last paragraph.
	HasCTA bool
}

// Warning is a style problem Lint found; the template still renders.
type Warning struct {
	File string
	Line int
	Col  int
	// Code is a stable identifier such as "no-cta", for filtering.
	Code string
	Msg  string
}

// String formats the warning like an Error, "FILE:LINE:COL: msg (code)".
func (w Warning) String() string {
	return (&Error{File: w.File, Line: w.Line, Col: w.Col, Msg: w.Msg}).Error() + " (" + w.Code + ")"
}
