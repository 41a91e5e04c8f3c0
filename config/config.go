// Package config reads followupd's YAML configuration: the schema, defaults,
// ${ENV} expansion and validation whose errors point at FILE:LINE:COL.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Config is the whole configuration file.
type Config struct {
	Database    Database    `yaml:"database"`
	Log         Log         `yaml:"log"`
	Templates   string      `yaml:"templates"`
	HTTP        HTTP        `yaml:"http"`
	Unsubscribe Unsubscribe `yaml:"unsubscribe"`
	Accounts    []Account   `yaml:"accounts"`
	Stages      []Stage     `yaml:"stages"`
	Sequences   []Sequence  `yaml:"sequences"`
	Rules       []Rule      `yaml:"rules"`
	Webhooks    []Webhook   `yaml:"webhooks"`
	Replies     Replies     `yaml:"replies"`

	// File is the path the configuration was read from; relative paths in it
	// are relative to its folder.
	File string `yaml:"-"`
	pos  map[string]Pos
}

// Database says where followupd keeps its state.
type Database struct {
	// Driver is "sqlite" (the default: one file, one process) or "postgres".
	Driver string `yaml:"driver"`
	// Path is the SQLite file, relative to the config file's folder.
	Path string `yaml:"path"`
	// DSN is the Postgres connection string.
	DSN Secret `yaml:"dsn"`
	// SendingLease is how long a message may stay "sending" before the
	// process that claimed it is taken for dead and the row becomes
	// uncertain (never resent blindly). Default 15m; it must outlast the
	// slowest SMTP transaction.
	SendingLease Duration `yaml:"sending_lease"`
}

// Replies tunes how replies are understood.
type Replies struct {
	// Phrases are added to the built-in intent rules (English, Dutch,
	// German, French): a reply whose visible text holds one gets the
	// intent. Words match whole, ignoring case and accents; "word*" matches
	// words starting with it; "~" stands for up to two words.
	Phrases []ReplyPhrases `yaml:"phrases"`
}

// ReplyPhrases are phrases that give a reply an intent.
type ReplyPhrases struct {
	// Intent is interested, not_now, not_interested, referral or unsubscribe.
	Intent string `yaml:"intent"`
	// Lang is the phrases' language (en, nl, de, fr, or another code);
	// informational, default en.
	Lang    string     `yaml:"lang"`
	Phrases StringList `yaml:"phrases"`
}

// Log sets the log level ("debug", "info", "warn", "error") and format ("text", "json").
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// HTTP configures the API, dashboard, unsubscribe links, health and metrics.
type HTTP struct {
	Listen   string `yaml:"listen"`
	APIToken Secret `yaml:"api_token"`
}

// Unsubscribe configures the one-click unsubscribe links put in every message.
type Unsubscribe struct {
	// BaseURL is the public address where /u/{token} is served, e.g. https://followup.example.com.
	BaseURL string `yaml:"base_url"`
	// Secret signs the tokens; at least 16 characters.
	Secret Secret `yaml:"secret"`
	// Mailto is an address that receives unsubscribe requests by mail; default the account's own.
	Mailto string `yaml:"mailto"`
}

// Account is one mailbox followupd sends from and watches.
type Account struct {
	Name        string     `yaml:"name"`
	FromName    string     `yaml:"from_name"`
	FromAddress string     `yaml:"from_address"`
	TimeZone    Location   `yaml:"timezone"`
	DailyLimit  int        `yaml:"daily_limit"`
	MinGap      Duration   `yaml:"min_gap"`
	MaxGap      Duration   `yaml:"max_gap"`
	SendWindow  SendWindow `yaml:"send_window"`
	SMTP        SMTP       `yaml:"smtp"`
	IMAP        *IMAP      `yaml:"imap"`
	// Headers are added to every message sent from this account.
	Headers map[string]string `yaml:"headers"`
	DKIM    *DKIM             `yaml:"dkim"`
	// OnUncertain decides what happens to a send whose outcome is unknown and
	// whose copy is not found in Sent: "skip" (default), "verify" or "resend".
	OnUncertain string `yaml:"on_uncertain"`
	// SaveToSent appends a copy of each sent message to the Sent folder (off
	// for providers that file SMTP mail themselves, such as Gmail).
	SaveToSent *bool `yaml:"save_to_sent"`
}

// Server is how to reach and log in to an SMTP or IMAP server.
type Server struct {
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	// TLS is "tls" (implicit), "starttls" (mandatory) or "none".
	TLS string `yaml:"tls"`
	// InsecurePlaintext must be true for tls: none, so a password never goes
	// over the wire in clear text by a single slip.
	InsecurePlaintext bool `yaml:"insecure_plaintext"`
	// InsecureSkipVerify accepts any TLS certificate (self-signed test servers only).
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	Username           string `yaml:"username"`
	Password           Secret `yaml:"password"`
	// Auth is "auto", "plain", "login", "cram-md5" or "xoauth2".
	Auth string `yaml:"auth"`
	// OAuth2TokenCommand prints an OAuth2 access token (XOAUTH2) on stdout.
	OAuth2TokenCommand string `yaml:"oauth2_token_command"`
}

// SMTP is the outgoing server.
type SMTP struct {
	Server      `yaml:",inline"`
	Concurrency int `yaml:"concurrency"`
	// RetryBase is the wait before the first retry after a temporary
	// failure (4xx, connection lost before the message was handed over),
	// doubled per attempt up to RetryMax, ±20%. Defaults 1m and 1h.
	RetryBase Duration `yaml:"retry_base"`
	RetryMax  Duration `yaml:"retry_max"`
	// GiveUpAfter is how long after it was queued a message is retried
	// before it fails; default 48h.
	GiveUpAfter Duration `yaml:"give_up_after"`
}

// IMAP is the incoming server followupd watches for replies (read-only).
type IMAP struct {
	Server `yaml:",inline"`
	// Folders are watched for replies; default INBOX.
	Folders []string `yaml:"folders"`
	// SentFolder holds sent mail; default: found by its \Sent special use.
	SentFolder string `yaml:"sent_folder"`
	// Lookback is how far back the first start reads; default 30d.
	Lookback Duration `yaml:"lookback"`
	// PollInterval is used when the server has no IDLE; default 60s.
	PollInterval Duration `yaml:"poll_interval"`
	// MaxMessageBytes caps how much of each message is fetched; default 256 KiB.
	MaxMessageBytes int `yaml:"max_message_bytes"`
}

// DKIM signs outgoing mail.
type DKIM struct {
	Domain   string `yaml:"domain"`
	Selector string `yaml:"selector"`
	KeyFile  string `yaml:"key_file"`
}

// SendWindow is when mail may go out: days of the week, hours, and the zone
// they are read in.
type SendWindow struct {
	Days  Weekdays   `yaml:"days"`
	Hours ClockRange `yaml:"hours"`
	// TimeZone is "contact" (the contact's own zone, falling back to the
	// account's), "account", or an IANA name.
	TimeZone string `yaml:"timezone"`
	Holidays []Date `yaml:"holidays"`
}

// Stage kinds.
const (
	StageOpen       = "open"
	StageWon        = "won"
	StageLost       = "lost"
	StageSuppressed = "suppressed"
)

// Stage is one step of the sales pipeline.
type Stage struct {
	Name string `yaml:"name"`
	// Type is open, won, lost or suppressed; lost and suppressed contacts are never mailed.
	Type string `yaml:"type"`
}

// Sequence is a series of emails sent to an enrolled contact.
type Sequence struct {
	Name string `yaml:"name"`
	// Accounts the sequence sends from; a contact keeps one for the whole sequence.
	Accounts StringList `yaml:"account"`
	Triggers []Trigger  `yaml:"triggers"`
	// Window overrides the account's send window.
	Window   *SendWindow `yaml:"window"`
	Steps    []Step      `yaml:"steps"`
	OnFinish OnFinish    `yaml:"on_finish"`
}

// Trigger enrolls contacts automatically.
type Trigger struct {
	Manual bool `yaml:"manual"`
	// OnStage enrolls contacts entering this stage.
	OnStage string `yaml:"on_stage"`
	// Anniversary enrolls every year on this date field (birthday or a custom field).
	Anniversary string `yaml:"anniversary"`
}

// Step is one email of a sequence.
type Step struct {
	Template string `yaml:"template"`
	// Delay counts from the previous step's actual send (or enrollment for the first).
	Delay Delay `yaml:"delay"`
	// Thread is "new" or "reply" (same thread as the first step: Re: subject, In-Reply-To).
	Thread string `yaml:"thread"`
	// Variants are alternative templates for an A/B test, chosen stably per contact.
	Variants []string    `yaml:"variants"`
	SkipIf   []Condition `yaml:"skip_if"`
}

// Condition tests a contact field.
type Condition struct {
	Field     string   `yaml:"field"`
	Equals    *string  `yaml:"equals"`
	NotEquals *string  `yaml:"not_equals"`
	In        []string `yaml:"in"`
	Empty     *bool    `yaml:"empty"`
}

// OnFinish says what happens after the last step.
type OnFinish struct {
	SetStage string `yaml:"set_stage"`
	Enroll   string `yaml:"enroll"`
}

// Rule events.
const (
	EventReply        = "reply"
	EventAutoreply    = "autoreply"
	EventBounce       = "bounce"
	EventPurchase     = "purchase"
	EventStageChanged = "stage_changed"
	EventFieldChanged = "field_changed"
	EventUnsubscribe  = "unsubscribe"
)

// Rule maps an event and conditions to actions.
type Rule struct {
	Name string `yaml:"name"`
	// On is the event: reply, autoreply, bounce, unsubscribe, purchase, stage_changed, field_changed.
	On string `yaml:"on"`
	// Intent matches a reply's intent: interested, not_now, not_interested, referral, unsubscribe, other.
	Intent StringList `yaml:"intent"`
	// BounceClass matches a bounce: hard or soft.
	BounceClass StringList `yaml:"bounce_class"`
	// Stage matches the contact's current stage.
	Stage StringList `yaml:"stage"`
	// MinPurchases matches contacts with at least this many purchases.
	MinPurchases int         `yaml:"min_purchases"`
	Fields       []Condition `yaml:"fields"`
	Do           Actions     `yaml:"do"`
}

// Actions a rule takes.
type Actions struct {
	SetStage string `yaml:"set_stage"`
	// Stop is "this" (the enrollment the event belongs to) or "all".
	Stop string `yaml:"stop"`
	// Pause pauses enrollments until the date found (an out-of-office's return), or for Default.
	Pause *Pause `yaml:"pause"`
	// Snooze stops now and re-enrolls later: on the date named in the reply, or after Default.
	Snooze   *Snooze     `yaml:"snooze"`
	Suppress bool        `yaml:"suppress"`
	Lead     *CreateLead `yaml:"create_lead"`
	// Note adds the reply's visible text to the contact's timeline.
	Note    bool   `yaml:"note"`
	Webhook string `yaml:"webhook"`
	Enroll  string `yaml:"enroll"`
}

// Pause holds an enrollment.
type Pause struct {
	Default Duration `yaml:"default"`
}

// Snooze re-enrolls a contact later.
type Snooze struct {
	Default Duration `yaml:"default"`
	Enroll  string   `yaml:"enroll"`
}

// CreateLead creates a referred contact.
type CreateLead struct {
	Stage  string `yaml:"stage"`
	Enroll string `yaml:"enroll"`
}

// Webhook receives events as JSON POSTs, signed with Secret.
type Webhook struct {
	URL    string     `yaml:"url"`
	Events StringList `yaml:"events"`
	Secret Secret     `yaml:"secret"`
}

// Load reads, expands, decodes, defaults and validates a configuration file.
// All problems are returned at once as Errors.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: "cannot read the configuration: " + pathError(err)}}
	}
	return Parse(path, data, os.LookupEnv)
}

func pathError(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

// Parse is Load on bytes already read; getenv resolves ${VAR} references.
func Parse(path string, data []byte, getenv func(string) (string, bool)) (*Config, error) {
	d := newDecoder(path, getenv)
	c := &Config{}
	d.parseYAML(data, c)
	c.File = path
	c.pos = d.pos
	// Validation runs even after decoding errors so that one run reports
	// every problem; a value that failed to decode is left at its default.
	if !d.fatal {
		c.applyDefaults()
		v := &validator{c: c, d: d}
		v.validate()
	}
	if len(d.errs) > 0 {
		sortErrors(d.errs)
		return nil, d.errs
	}
	return c, nil
}

// Dir is the folder of the configuration file.
func (c *Config) Dir() string { return filepath.Dir(c.File) }

// Resolve makes a path from the config relative to the config's folder.
func (c *Config) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir(), p)
}

// TemplatesDir is the absolute-or-relative-to-cwd templates folder.
func (c *Config) TemplatesDir() string { return c.Resolve(c.Templates) }

// DatabaseDSN is what store.Open needs: the SQLite file path or the Postgres DSN.
func (c *Config) DatabaseDSN() string {
	if c.Database.Driver == "postgres" {
		return c.Database.DSN.Value()
	}
	return c.Resolve(c.Database.Path)
}

// Stage returns the stage with that name.
func (c *Config) Stage(name string) (Stage, bool) {
	for _, s := range c.Stages {
		if s.Name == name {
			return s, true
		}
	}
	return Stage{}, false
}

// StageNames lists the stages in pipeline order.
func (c *Config) StageNames() []string {
	out := make([]string, len(c.Stages))
	for i, s := range c.Stages {
		out[i] = s.Name
	}
	return out
}

// DefaultStage is where new contacts start: the first open stage.
func (c *Config) DefaultStage() string {
	for _, s := range c.Stages {
		if s.Type == StageOpen {
			return s.Name
		}
	}
	return ""
}

// Account returns the account with that name.
func (c *Config) Account(name string) (*Account, bool) {
	for i := range c.Accounts {
		if c.Accounts[i].Name == name {
			return &c.Accounts[i], true
		}
	}
	return nil, false
}

// Sequence returns the sequence with that name.
func (c *Config) Sequence(name string) (*Sequence, bool) {
	for i := range c.Sequences {
		if c.Sequences[i].Name == name {
			return &c.Sequences[i], true
		}
	}
	return nil, false
}

// PosOf is where a key was written, by path such as "accounts[0].smtp.port";
// zero when it was not written.
func (c *Config) PosOf(path string) Pos { return c.pos[path] }

// ErrorAt builds an Error pointing at the key path in this config file.
func (c *Config) ErrorAt(path, msg string) Error {
	return Error{File: c.File, Pos: c.nearest(path), Msg: path + ": " + msg}
}

// nearest finds the position of path or, when it was not written, of the
// closest enclosing key that was.
func (c *Config) nearest(path string) Pos {
	for p := path; p != ""; {
		if pos, ok := c.pos[p]; ok {
			return pos
		}
		i := lastSep(p)
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return Pos{}
}

func lastSep(p string) int {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '.' || p[i] == '[' {
			return i
		}
	}
	return -1
}

// DefaultStages is the pipeline used when the config names none.
func DefaultStages() []Stage {
	return []Stage{
		{Name: "lead", Type: StageOpen},
		{Name: "prospect", Type: StageOpen},
		{Name: "customer", Type: StageWon},
		{Name: "repeat_customer", Type: StageWon},
		{Name: "not_interested", Type: StageLost},
		{Name: "unsubscribed", Type: StageSuppressed},
		{Name: "bounced", Type: StageSuppressed},
	}
}

func (c *Config) applyDefaults() {
	if c.Database.Driver == "" {
		c.Database.Driver = "sqlite"
	}
	if c.Database.Driver == "sqlite" && c.Database.Path == "" {
		c.Database.Path = "followupd.db"
	}
	for i := range c.Replies.Phrases {
		if c.Replies.Phrases[i].Lang == "" {
			c.Replies.Phrases[i].Lang = "en"
		}
	}
	if c.Database.SendingLease == 0 {
		c.Database.SendingLease = Duration(15 * time.Minute)
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Templates == "" {
		c.Templates = "templates"
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = "127.0.0.1:8025"
	}
	if len(c.Stages) == 0 {
		c.Stages = DefaultStages()
	}
	for i := range c.Accounts {
		a := &c.Accounts[i]
		if a.TimeZone.Location == nil {
			a.TimeZone.Location = time.UTC
		}
		if a.DailyLimit == 0 {
			a.DailyLimit = 50
		}
		// A gap written as 0 means no pause; only an absent one gets the default.
		p := fmt.Sprintf("accounts[%d].", i)
		if _, set := c.pos[p+"min_gap"]; !set && a.MinGap == 0 {
			a.MinGap = Duration(2 * time.Minute)
		}
		if _, set := c.pos[p+"max_gap"]; !set && a.MaxGap == 0 {
			a.MaxGap = max(a.MinGap, Duration(6*time.Minute))
		}
		defaultWindow(&a.SendWindow, "account")
		if a.OnUncertain == "" {
			a.OnUncertain = "skip"
		}
		defaultServer(&a.SMTP.Server, map[string]int{"tls": 465, "starttls": 587, "none": 25})
		if a.SMTP.RetryBase == 0 {
			a.SMTP.RetryBase = Duration(time.Minute)
		}
		if a.SMTP.RetryMax == 0 {
			a.SMTP.RetryMax = max(a.SMTP.RetryBase, Duration(time.Hour))
		}
		if a.SMTP.GiveUpAfter == 0 {
			a.SMTP.GiveUpAfter = Duration(48 * time.Hour)
		}
		if a.SMTP.Concurrency == 0 {
			a.SMTP.Concurrency = 1
		}
		if a.IMAP != nil {
			defaultServer(&a.IMAP.Server, map[string]int{"tls": 993, "starttls": 143, "none": 143})
			if len(a.IMAP.Folders) == 0 {
				a.IMAP.Folders = []string{"INBOX"}
			}
			if a.IMAP.Lookback == 0 {
				a.IMAP.Lookback = Duration(30 * 24 * time.Hour)
			}
			if a.IMAP.PollInterval == 0 {
				a.IMAP.PollInterval = Duration(time.Minute)
			}
			if a.IMAP.MaxMessageBytes == 0 {
				a.IMAP.MaxMessageBytes = 256 << 10
			}
		}
	}
	for i := range c.Sequences {
		s := &c.Sequences[i]
		if len(s.Accounts) == 0 && len(c.Accounts) == 1 {
			s.Accounts = StringList{c.Accounts[0].Name}
		}
		if s.Window != nil {
			defaultWindow(s.Window, "contact")
		}
		for j := range s.Steps {
			if s.Steps[j].Thread == "" {
				s.Steps[j].Thread = "new"
			}
		}
	}
}

func defaultWindow(w *SendWindow, zone string) {
	if len(w.Days) == 0 {
		w.Days = Weekdays{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}
	}
	if w.Hours == (ClockRange{}) {
		w.Hours = ClockRange{Start: 9 * time.Hour, End: 17 * time.Hour}
	}
	if w.TimeZone == "" {
		w.TimeZone = zone
	}
}

func defaultServer(s *Server, ports map[string]int) {
	if s.TLS == "" {
		s.TLS = "tls"
	}
	if s.Port == 0 {
		s.Port = ports[s.TLS]
	}
	if s.Auth == "" {
		s.Auth = "auto"
		if s.OAuth2TokenCommand != "" {
			s.Auth = "xoauth2"
		}
	}
}
