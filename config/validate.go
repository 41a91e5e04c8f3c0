package config

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
)

// Known values of the enumerated keys.
var (
	tlsModes       = []string{"tls", "starttls", "none"}
	authModes      = []string{"auto", "plain", "login", "cram-md5", "xoauth2"}
	stageTypes     = []string{StageOpen, StageWon, StageLost, StageSuppressed}
	threadModes    = []string{"new", "reply"}
	uncertainModes = []string{"skip", "verify", "resend"}
	ruleEvents     = []string{EventReply, EventAutoreply, EventBounce, EventUnsubscribe, EventPurchase, EventStageChanged, EventFieldChanged}
	intents        = []string{"interested", "not_now", "not_interested", "referral", "unsubscribe", "other"}
	bounceClasses  = []string{"hard", "soft"}
	webhookEvents  = []string{"sent", "replied", "bounced", "unsubscribed", "stage_changed"}
	stopModes      = []string{"this", "all"}
	logLevels      = []string{"debug", "info", "warn", "error"}
	logFormats     = []string{"text", "json"}
	// TemplateExts are the file endings a template may have, in lookup order.
	TemplateExts = []string{".md", ".txt"}
)

type validator struct {
	c *Config
	d *decoder
}

func (v *validator) errf(path, format string, args ...any) {
	v.d.errs = append(v.d.errs, v.c.ErrorAt(path, oneLine.Replace(fmt.Sprintf(format, args...))))
}

func (v *validator) oneOf(path, got string, want []string) {
	if !slices.Contains(want, got) {
		v.errf(path, "unknown value %q (want %s)", got, orList(want))
	}
}

func orList(want []string) string {
	if len(want) == 1 {
		return want[0]
	}
	return strings.Join(want[:len(want)-1], ", ") + " or " + want[len(want)-1]
}

func sortErrors(es Errors) {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Line != es[j].Line {
			return es[i].Line < es[j].Line
		}
		return es[i].Col < es[j].Col
	})
}

func (v *validator) validate() {
	c := v.c
	v.oneOf("database.driver", c.Database.Driver, []string{"sqlite", "postgres"})
	if c.Database.Driver == "postgres" && c.Database.DSN == "" {
		v.errf("database.dsn", "driver postgres needs a dsn, e.g. ${FOLLOWUPD_DATABASE_URL}")
	}
	if c.Database.SendingLease < Duration(10*time.Second) {
		v.errf("database.sending_lease", "must be at least 10s (a send in progress must not be taken for dead), got %s", formatDuration(c.Database.SendingLease.Std()))
	}
	v.validateReplies()
	v.oneOf("log.level", c.Log.Level, logLevels)
	v.oneOf("log.format", c.Log.Format, logFormats)
	v.validateHTTP()
	v.validateTemplatesDir()

	stages := map[string]bool{}
	for i, s := range c.Stages {
		p := fmt.Sprintf("stages[%d]", i)
		if s.Name == "" {
			v.errf(p+".name", "a stage needs a name")
		} else if stages[s.Name] {
			v.errf(p+".name", "stage %q is listed twice", s.Name)
		}
		stages[s.Name] = true
		v.oneOf(p+".type", s.Type, stageTypes)
	}
	if c.DefaultStage() == "" {
		v.errf("stages", "at least one stage must have type open: new contacts start there")
	}

	accounts := map[string]bool{}
	for i := range c.Accounts {
		v.validateAccount(i, accounts)
	}

	sequences := map[string]bool{}
	for _, s := range c.Sequences {
		sequences[s.Name] = true
	}
	seen := map[string]bool{}
	for i := range c.Sequences {
		v.validateSequence(i, seen, accounts, stages, sequences)
	}
	for i := range c.Rules {
		v.validateRule(i, stages, sequences)
	}
	// An event no one fires would silently never arrive.
	knownEvents := append([]string{"*"}, webhookEvents...)
	for _, r := range c.Rules {
		if r.Do.Webhook != "" && !slices.Contains(knownEvents, r.Do.Webhook) {
			knownEvents = append(knownEvents, r.Do.Webhook)
		}
	}
	for i, w := range c.Webhooks {
		p := fmt.Sprintf("webhooks[%d]", i)
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.errf(p+".url", "%q is not an http(s) URL", w.URL)
		}
		if w.Secret == "" {
			v.errf(p+".secret", "a webhook needs a secret so the receiver can check the signature")
		}
		for j, ev := range w.Events {
			if !slices.Contains(knownEvents, ev) {
				v.errf(fmt.Sprintf("%s.events[%d]", p, j), "unknown event %q (want %s, or a name a rule's webhook action fires)", ev, strings.Join(knownEvents, ", "))
			}
		}
	}
	if len(c.Sequences) > 0 {
		v.validateUnsubscribe()
	}
}

func (v *validator) validateHTTP() {
	h := v.c.HTTP
	host, port, err := net.SplitHostPort(h.Listen)
	if err != nil || port == "" {
		v.errf("http.listen", "%q is not host:port (e.g. 127.0.0.1:8025)", h.Listen)
		return
	}
	ip := net.ParseIP(host)
	loopback := host == "localhost" || (ip != nil && ip.IsLoopback())
	if !loopback && h.APIToken == "" {
		v.errf("http.api_token", "http.listen %q is reachable from other machines: set an api_token (e.g. ${FOLLOWUPD_API_TOKEN})", h.Listen)
	}
	if h.APIToken != "" && len(h.APIToken) < 16 {
		v.errf("http.api_token", "the API token is too short: use at least 16 random characters")
	}
}

func (v *validator) validateTemplatesDir() {
	dir := v.c.TemplatesDir()
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		v.errf("templates", "templates folder %s does not exist", dir)
	}
}

func (v *validator) validateUnsubscribe() {
	u := v.c.Unsubscribe
	if u.BaseURL == "" {
		v.errf("unsubscribe.base_url", "sequences send mail, so every message needs an unsubscribe link: set base_url to the public address of followupd's HTTP server")
	} else if pu, err := url.Parse(u.BaseURL); err != nil || pu.Host == "" || (pu.Scheme != "https" && !(pu.Scheme == "http" && isLocalHost(pu.Hostname()))) {
		v.errf("unsubscribe.base_url", "%q must be an https URL (http only for localhost)", u.BaseURL)
	}
	if len(u.Secret) < 16 {
		v.errf("unsubscribe.secret", "the signing secret must be at least 16 characters (e.g. ${FOLLOWUPD_UNSUBSCRIBE_SECRET})")
	}
	if u.Mailto != "" {
		if _, err := mail.ParseAddress(u.Mailto); err != nil {
			v.errf("unsubscribe.mailto", "%q is not an email address", u.Mailto)
		}
	}
}

func isLocalHost(h string) bool {
	ip := net.ParseIP(h)
	return h == "localhost" || (ip != nil && ip.IsLoopback())
}

func (v *validator) validateAccount(i int, names map[string]bool) {
	a := &v.c.Accounts[i]
	p := fmt.Sprintf("accounts[%d]", i)
	switch {
	case a.Name == "":
		v.errf(p+".name", "an account needs a name")
	case names[a.Name]:
		v.errf(p+".name", "account %q is listed twice", a.Name)
	}
	names[a.Name] = true
	if addr, err := mail.ParseAddress(a.FromAddress); err != nil || addr.Name != "" {
		v.errf(p+".from_address", "%q is not a plain email address", a.FromAddress)
	}
	if strings.ContainsAny(a.FromName, "\r\n") {
		v.errf(p+".from_name", "must be on one line")
	}
	if a.DailyLimit < 0 {
		v.errf(p+".daily_limit", "cannot be negative")
	}
	if a.MinGap > a.MaxGap {
		v.errf(p+".min_gap", "min_gap %s is larger than max_gap %s", formatDuration(a.MinGap.Std()), formatDuration(a.MaxGap.Std()))
	}
	v.validateWindow(p+".send_window", a.SendWindow, false)
	v.oneOf(p+".on_uncertain", a.OnUncertain, uncertainModes)
	v.validateServer(p+".smtp", a.SMTP.Server)
	if a.SMTP.Concurrency < 1 || a.SMTP.Concurrency > 16 {
		v.errf(p+".smtp.concurrency", "must be between 1 and 16")
	}
	if a.SMTP.RetryBase < Duration(time.Second) {
		v.errf(p+".smtp.retry_base", "must be at least 1s, got %s", formatDuration(a.SMTP.RetryBase.Std()))
	}
	if a.SMTP.RetryMax < a.SMTP.RetryBase {
		v.errf(p+".smtp.retry_max", "retry_max %s is shorter than retry_base %s", formatDuration(a.SMTP.RetryMax.Std()), formatDuration(a.SMTP.RetryBase.Std()))
	}
	if a.SMTP.GiveUpAfter < Duration(time.Minute) {
		v.errf(p+".smtp.give_up_after", "must be at least 1m, got %s", formatDuration(a.SMTP.GiveUpAfter.Std()))
	}
	if a.IMAP != nil {
		v.validateServer(p+".imap", a.IMAP.Server)
		if a.IMAP.MaxMessageBytes < 4096 {
			v.errf(p+".imap.max_message_bytes", "must be at least 4096")
		}
	}
	if a.DKIM != nil {
		if a.DKIM.Domain == "" || a.DKIM.Selector == "" || a.DKIM.KeyFile == "" {
			v.errf(p+".dkim", "dkim needs domain, selector and key_file")
		} else if _, err := os.Stat(v.c.Resolve(a.DKIM.KeyFile)); err != nil {
			v.errf(p+".dkim.key_file", "cannot read %s", v.c.Resolve(a.DKIM.KeyFile))
		}
	}
	for k, val := range a.Headers {
		if !validHeaderName(k) {
			v.errf(p+".headers."+k, "%q is not a valid header name", k)
		}
		if strings.ContainsAny(val, "\r\n") {
			v.errf(p+".headers."+k, "a header value must be on one line")
		}
	}
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r >= 127 || r == ':' {
			return false
		}
	}
	return true
}

func (v *validator) validateServer(p string, s Server) {
	if s.Host == "" {
		v.errf(p+".host", "missing host")
	}
	if s.Port < 1 || s.Port > 65535 {
		v.errf(p+".port", "port %d is out of range", s.Port)
	}
	v.oneOf(p+".tls", s.TLS, tlsModes)
	v.oneOf(p+".auth", s.Auth, authModes)
	if s.TLS == "none" && !s.InsecurePlaintext {
		v.errf(p+".tls", "tls: none sends mail and passwords unencrypted; add insecure_plaintext: true to allow it (test servers only)")
	}
	if s.Password != "" && s.OAuth2TokenCommand != "" {
		v.errf(p+".oauth2_token_command", "set either password or oauth2_token_command, not both")
	}
	if s.Auth == "xoauth2" && s.OAuth2TokenCommand == "" {
		v.errf(p+".auth", "auth xoauth2 needs an oauth2_token_command")
	}
	if s.Username != "" && s.Password == "" && s.OAuth2TokenCommand == "" {
		v.errf(p+".password", "username %q has no password (use ${ENV_VAR}) or oauth2_token_command", s.Username)
	}
}

func (v *validator) validateWindow(p string, w SendWindow, allowContact bool) {
	switch w.TimeZone {
	case "account":
	case "contact":
		if !allowContact {
			v.errf(p+".timezone", "an account's window is in the account's zone: write account or an IANA name")
		}
	default:
		if _, err := LoadLocation(w.TimeZone); err != nil {
			v.errf(p+".timezone", "%v (or contact, account)", err)
		}
	}
}

func (v *validator) templateExists(name string) bool {
	for _, ext := range TemplateExts {
		if st, err := os.Stat(filepath.Join(v.c.TemplatesDir(), name+ext)); err == nil && !st.IsDir() {
			return true
		}
	}
	return false
}

func (v *validator) validateSequence(i int, seen, accounts, stages, sequences map[string]bool) {
	s := &v.c.Sequences[i]
	p := fmt.Sprintf("sequences[%d]", i)
	switch {
	case s.Name == "":
		v.errf(p+".name", "a sequence needs a name")
	case seen[s.Name]:
		v.errf(p+".name", "sequence %q is listed twice", s.Name)
	}
	seen[s.Name] = true
	if len(s.Accounts) == 0 {
		v.errf(p+".account", "name the account this sequence sends from")
	}
	for j, a := range s.Accounts {
		if !accounts[a] {
			v.errf(fmt.Sprintf("%s.account[%d]", p, j), "unknown account %q", a)
		}
	}
	for j, t := range s.Triggers {
		tp := fmt.Sprintf("%s.triggers[%d]", p, j)
		n := 0
		if t.Manual {
			n++
		}
		if t.OnStage != "" {
			n++
			if !stages[t.OnStage] {
				v.errf(tp+".on_stage", "unknown stage %q (stages: %s)", t.OnStage, strings.Join(v.c.StageNames(), ", "))
			}
		}
		if t.Anniversary != "" {
			n++
		}
		if n != 1 {
			v.errf(tp, "a trigger has exactly one of manual, on_stage, anniversary")
		}
	}
	if s.Window != nil {
		v.validateWindow(p+".window", *s.Window, true)
	}
	if len(s.Steps) == 0 {
		v.errf(p+".steps", "sequence %q has no steps", s.Name)
	}
	for j, st := range s.Steps {
		sp := fmt.Sprintf("%s.steps[%d]", p, j)
		if st.Template == "" {
			v.errf(sp+".template", "a step needs a template")
		} else if !v.templateExists(st.Template) {
			v.errf(sp+".template", "template %q not found in %s (want %s.md or %s.txt)", st.Template, v.c.TemplatesDir(), st.Template, st.Template)
		}
		for k, t := range st.Variants {
			if !v.templateExists(t) {
				v.errf(fmt.Sprintf("%s.variants[%d]", sp, k), "template %q not found in %s", t, v.c.TemplatesDir())
			}
		}
		v.oneOf(sp+".thread", st.Thread, threadModes)
		if j == 0 && st.Thread == "reply" {
			v.errf(sp+".thread", "the first step cannot reply: there is no earlier message in the thread")
		}
		for k, cond := range st.SkipIf {
			v.validateCondition(fmt.Sprintf("%s.skip_if[%d]", sp, k), cond)
		}
	}
	if s.OnFinish.SetStage != "" && !stages[s.OnFinish.SetStage] {
		v.errf(p+".on_finish.set_stage", "unknown stage %q (stages: %s)", s.OnFinish.SetStage, strings.Join(v.c.StageNames(), ", "))
	}
	if s.OnFinish.Enroll != "" && !sequences[s.OnFinish.Enroll] {
		v.errf(p+".on_finish.enroll", "unknown sequence %q", s.OnFinish.Enroll)
	}
}

func (v *validator) validateCondition(p string, c Condition) {
	if c.Field == "" {
		v.errf(p+".field", "a condition needs a field")
	}
	n := 0
	for _, set := range []bool{c.Equals != nil, c.NotEquals != nil, c.In != nil, c.Empty != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		v.errf(p, "a condition has exactly one of equals, not_equals, in, empty")
	}
}

func (v *validator) validateRule(i int, stages, sequences map[string]bool) {
	r := &v.c.Rules[i]
	p := fmt.Sprintf("rules[%d]", i)
	v.oneOf(p+".on", r.On, ruleEvents)
	for j, in := range r.Intent {
		v.oneOf(fmt.Sprintf("%s.intent[%d]", p, j), in, intents)
	}
	if len(r.Intent) > 0 && r.On != EventReply {
		v.errf(p+".intent", "intent only applies to on: reply")
	}
	for j, bc := range r.BounceClass {
		v.oneOf(fmt.Sprintf("%s.bounce_class[%d]", p, j), bc, bounceClasses)
	}
	if len(r.BounceClass) > 0 && r.On != EventBounce {
		v.errf(p+".bounce_class", "bounce_class only applies to on: bounce")
	}
	for j, s := range r.Stage {
		if !stages[s] {
			v.errf(fmt.Sprintf("%s.stage[%d]", p, j), "unknown stage %q (stages: %s)", s, strings.Join(v.c.StageNames(), ", "))
		}
	}
	for k, cond := range r.Fields {
		v.validateCondition(fmt.Sprintf("%s.fields[%d]", p, k), cond)
	}
	a := r.Do
	if a.SetStage != "" && !stages[a.SetStage] {
		v.errf(p+".do.set_stage", "unknown stage %q (stages: %s)", a.SetStage, strings.Join(v.c.StageNames(), ", "))
	}
	if a.Stop != "" {
		v.oneOf(p+".do.stop", a.Stop, stopModes)
	}
	seqRef := func(path, name string) {
		if name != "" && !sequences[name] {
			v.errf(path, "unknown sequence %q", name)
		}
	}
	seqRef(p+".do.enroll", a.Enroll)
	if a.Snooze != nil {
		seqRef(p+".do.snooze.enroll", a.Snooze.Enroll)
	}
	if a.Lead != nil {
		seqRef(p+".do.create_lead.enroll", a.Lead.Enroll)
		if a.Lead.Stage != "" && !stages[a.Lead.Stage] {
			v.errf(p+".do.create_lead.stage", "unknown stage %q", a.Lead.Stage)
		}
	}
	if a.Pause != nil && a.Snooze != nil {
		v.errf(p+".do", "pause and snooze exclude each other")
	}
	if a == (Actions{}) {
		v.errf(p+".do", "the rule does nothing: add an action")
	}
}

func (v *validator) validateReplies() {
	for i, rp := range v.c.Replies.Phrases {
		p := fmt.Sprintf("replies.phrases[%d]", i)
		if rp.Intent == "other" {
			v.errf(p+".intent", "phrases cannot make a reply other: other is what matches no phrase")
		} else {
			v.oneOf(p+".intent", rp.Intent, intents[:len(intents)-1])
		}
		if len(rp.Phrases) == 0 {
			v.errf(p+".phrases", "give at least one phrase")
		}
		for j, ph := range rp.Phrases {
			if !strings.ContainsFunc(ph, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
				v.errf(fmt.Sprintf("%s.phrases[%d]", p, j), "the phrase %q has no word", ph)
			}
		}
	}
}
