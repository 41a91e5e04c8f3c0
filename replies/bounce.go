package replies

import (
	"bufio"
	"net/textproto"
	"regexp"
	"strings"
)

// Bounce detection and analysis: RFC 3464 delivery status notifications and
// the common non-standard formats (Exim, qmail, Postfix, Sendmail, Exchange,
// Gmail, Yahoo, Courier, Lotus Notes, …).

// dsnRecipient is one per-recipient field block of a message/delivery-status.
type dsnRecipient struct {
	final, original string // addresses, lower-case
	action          string // lower-case
	status          string // "5.1.1"
	statusComment   string // "(mailbox disabled, not accepting messages)"
	diagnostic      string
}

var statusCodeRE = regexp.MustCompile(`\b([245])\.(\d{1,3})\.(\d{1,3})\b`)

// parseDSN reads the field blocks of a message/delivery-status body with
// net/textproto and returns the per-recipient blocks.
func parseDSN(s string) []dsnRecipient {
	var out []dsnRecipient
	for _, block := range splitBlocks(s) {
		h := readFieldBlock(block)
		r := dsnRecipient{
			final:      dsnAddress(h.Get("Final-Recipient")),
			original:   dsnAddress(h.Get("Original-Recipient")),
			action:     strings.ToLower(strings.TrimSpace(h.Get("Action"))),
			diagnostic: strings.TrimSpace(h.Get("Diagnostic-Code")),
		}
		if st := h.Get("Status"); st != "" {
			if m := statusCodeRE.FindStringIndex(st); m != nil {
				r.status = st[m[0]:m[1]]
				r.statusComment = strings.TrimSpace(st[m[1]:])
			}
		}
		if r.final == "" {
			r.final = dsnAddress(h.Get("X-Actual-Recipient"))
		}
		if r.final != "" || r.original != "" || r.action != "" {
			out = append(out, r)
		}
	}
	return out
}

// splitBlocks splits text into blocks separated by blank lines.
func splitBlocks(s string) []string {
	var blocks []string
	var cur strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) == "" {
			if cur.Len() > 0 {
				blocks = append(blocks, cur.String())
				cur.Reset()
			}
			continue
		}
		cur.WriteString(l)
		cur.WriteByte('\n')
	}
	if cur.Len() > 0 {
		blocks = append(blocks, cur.String())
	}
	return blocks
}

// readFieldBlock parses "Name: value" lines with continuations. It uses
// net/textproto and falls back to a line-by-line reading when the block is
// malformed, so one bad line does not lose the block.
func readFieldBlock(block string) textproto.MIMEHeader {
	// a buffer the size of the block rather than bufio's 4 KiB: the reader
	// reads lines of any length whatever its buffer size
	r := textproto.NewReader(bufio.NewReaderSize(strings.NewReader(block+"\n"), len(block)+1))
	h, err := r.ReadMIMEHeader()
	if err == nil {
		return h
	}
	h = textproto.MIMEHeader{}
	var key string
	for _, l := range strings.Split(block, "\n") {
		if l == "" {
			continue
		}
		if (l[0] == ' ' || l[0] == '\t') && key != "" {
			vs := h[key]
			vs[len(vs)-1] += " " + strings.TrimSpace(l)
			continue
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok || strings.ContainsAny(k, " \t") {
			key = ""
			continue
		}
		key = textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(k))
		h.Add(key, strings.TrimSpace(v))
	}
	return h
}

// dsnAddress extracts the address from "rfc822; <user@example.com>".
func dsnAddress(v string) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return ""
	}
	if _, after, ok := strings.Cut(v, ";"); ok {
		v = after
	}
	if m := addrRE.FindString(v); m != "" {
		return strings.ToLower(strings.Trim(m, ".'"))
	}
	return ""
}

// Reasons, most specific class first. The class follows the reason, not the
// status code alone: a full mailbox reported with 5.2.2 is soft.
var (
	// transient: mailbox full, disabled or suspended account, rate limits,
	// expired / delayed delivery, network and system errors, mail loops
	softReasonRE = newPatternSet(`mailbox (?:is )?full|full mailbox|mailbox (?:is )?busy|mailbox.{0,30}(?:exceed|over|limit|size|full)|over ?quota|quota (?:exceeded|exceed|full)|exceed(?:s|ed)? (?:the |his |her |their |its )?(?:storage|quota|mailbox|disk)|insufficient (?:disk|storage|system storage)|disk (?:space|quota)|mail ?folder is full|(?:mailbox|folder|inbox) (?:is )?(?:over|full)|storage (?:limit|space|quota)|too many messages|zu ?viele (?:mails|nachrichten)|postfach.{0,40}\bvoll\b|postvak.{0,40}\bvol\b|mailbox.{0,40}\bvol\b|speicher.{0,30}(?:voll|überschritten)|tijdelijk|vorübergehend|voruebergehend|temporai|später erneut|later opnieuw|probeer het later|bo[iî]te .{0,20}pleine|exceeds allowed size|number of messages .{0,60}exceed|(?:account|mailbox|user|address|recipient).{0,50}\b(?:is |has been |was )?(?:disabled|suspended|deactivated)|(?:disabled|suspended) (?:account|mailbox|user)|too many (?:connections|recipients|concurrent|sessions|requests|messages (?:sent|from))|rate.?limit|throttl|frequency limit|sending limit|too many .{0,40} this hour|try again later|please try later|try later|try again in|essayer plus tard|temporar|greylist|deferred|connection (?:timed out|refused|reset|lost)|timed out|time-?out|(?:host|server) (?:is )?not reachable|unreachable|network (?:is )?(?:unreachable|error)|no route to host|lookup failure|retry time(?:out)? (?:exceeded|reached)|message expired|queue\.expired|\bexpired\b|unable to deliver (?:this message )?(?:in|after|within)|could not be delivered for|delivery time expired|aborted after|in the queue too long|will be retried|retry .{0,20}(?:more )?day|will continue to try|continue trying|\bdelay(?:ed)?\b|not yet (?:been )?delivered|system (?:is )?(?:full|overloaded|busy)|resources temporarily|out of memory|local error|system error|ldap server|unable to contact|loop (?:detected|alert)|mail loop|too many hops|duplicated message-id|service refus|could not find a gateway`)

	// permanent: the address or the domain does not exist (any more)
	hardReasonRE = newPatternSet(`user (?:is )?unknown|unknown (?:user|recipient|address|local.?part|mailbox|alias)|no such (?:user|recipient|mailbox|address|account|domain|host|person)|(?:user|recipient|mailbox|address|account|addressee|e-?mail)\b.{0,40}(?:does not|doesn't|did not|do not) exist|(?:user|recipient|mailbox|address|account|addressee)(?: name)? (?:was |is )?not (?:found|exist|known|listed|valid|recognized)|(?:does not|doesn't) have an? .{0,30}account|(?:address|recipient|user|mailbox|domain|server)\b.{0,30}\b(?:was ?n[o']t|could ?n[o']t be|cannot be|can't be) found|recipient unknown|address unknown|bad recipient|illegal alias|name or service not known|does not accept (?:e-?)?mail|not listed in|recipnotfound|recipient not found|mailbox (?:is )?(?:unavailable|not found|does not exist|unknown|not available)|invalid (?:recipient|mailbox|address|user|e-?mail)|no mailbox|no longer (?:on server|available|active|valid|exists|in use|with)|has moved|moved permanently|no forwarding address|inactive (?:e-?mail|mailbox|account|user|address|recipient)|host (?:or domain name )?(?:not found|unknown)|domain (?:name )?(?:not found|does not exist|unknown)|unrout(?:e)?able|no mx|mx (?:record )?not found|name service error|nie istnieje|existiert nicht|unbekannt|inconnu|n'existe pas|onbekend|bestaat niet|nicht gefunden|niet gevonden|introuvable|inexistant|gibt es nicht|recipient name is not recognized|unknown recipient|bad destination mailbox|account (?:has been )?(?:closed|removed|deleted|terminated)|addressee unknown|not our customer|mailbox not allowed|no valid recipients|invalid user address`)

	// message size: soft when the recipient's limit (x.2.3), else a content rejection
	sizeReasonRE = newPatternSet(`message (?:is )?too (?:big|large)|too large|message size|size limit|exceeds? .{0,20}(?:maximum|max\b|size)|length exceeds|mail size|recipsizelimit|message length`)

	// sender, policy and content rejections: no hard/soft class
	policyReasonRE = newPatternSet(`spam|\bube\b|banned|bulk (?:e-?mail|mail)|blocked|block ?list|black ?list|deny ?list|\brbl\b|dnsbl|spamhaus|reputation|polic(?:y|ies)|dmarc|\bspf\b|dkim|unauthenticated|not authenticated|authentication (?:required|failed|failure)|auth(?:entication)? (?:failure|failed)|reverse dns|ptr record|\brdns\b|virus|malware|infected|content (?:rejected|filter)|message content|relay(?:ing)? (?:access )?(?:denied|not permitted|prohibited)|not permitted to relay|unable to relay|not allowed to relay|no relaying|filtered|sender (?:address )?(?:rejected|denied|blocked)|not accepted due to|tls required|encryption required|starttls|send mail as|does not advertise auth|customfromdenied|misconfigured|rejected for policy|client host rejected|access denied.{0,20}sender`)

	// weak hints of a bad recipient, used when nothing more specific matched
	weakHardRE = newPatternSet(`address rejected|recipient rejected|rejected.{0,20}recipient|access denied|invalid address|bad address|address (?:is )?invalid|not a valid (?:e-?mail|address|recipient)`)
)

// senderReasonRE: the sender (not the recipient) was refused; checked before
// the hard reasons because "Sender address rejected: Domain not found" names
// the sender's domain.
var senderReasonRE = newPatternSet(`sender address rejected|sender verify failed|sender verification failed|sender domain (?:not found|does not exist|unknown)|rejected sender|envelope sender .{0,30}(?:rejected|invalid)|mail from .{0,40}rejected`)

// reasonClass decides "hard", "soft" or "" from the reason text and the
// status code. delayed is true for DSNs with Action: delayed.
func reasonClass(reasonText, status, dsnStatus string, delayed bool) string {
	if delayed || strings.HasPrefix(dsnStatus, "4.") {
		return "soft"
	}
	reason := indexText(strings.ToLower(reasonText))
	switch {
	case softReasonRE.matchText(reason):
		return "soft"
	case senderReasonRE.matchText(reason):
		return ""
	case hardReasonRE.matchText(reason):
		return "hard"
	case sizeReasonRE.matchText(reason):
		if strings.HasSuffix(status, ".2.3") {
			return "soft" // the recipient's own size limit
		}
		return ""
	case policyReasonRE.matchText(reason):
		return ""
	case weakHardRE.matchText(reason):
		return "hard"
	}
	// no reason text we know: the status code alone
	if status == "" {
		return ""
	}
	if strings.HasPrefix(status, "4.") {
		return "soft"
	}
	switch status {
	case "5.1.0", "5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.4.4", "5.4.1":
		return "hard"
	case "5.2.1", "5.2.2", "5.2.3", "5.4.7", "5.3.2", "5.4.5":
		return "soft"
	}
	return ""
}

// Bounce detection signals.
var (
	daemonLocalRE = mustStartRE(`(?i)^(?:mailer[-_.]?daemon|mail[-_.]?daemon|postmaster|post[-_.]master|poostmaster|mdaemon|mail\.delivery\.system)$`)
	daemonNameRE  = regexp.MustCompile(`(?i)mail(?:er)?[- ]?daemon|mail delivery|delivery (?:status|subsystem|system)|postmaster|\bndr\b`)

	// subjects that start like a bounce
	bounceSubjectRE = mustStartRE(`^\s*(?:\*+\s*)?(?:undeliverable|undelivered|undeliverable mail|delivery status notification|delivery (?:status|report|failure|failed|notification|problem)|failure notice|failed delivery|returned mail|return(?:ed)? to sender|mail delivery (?:failed|failure|system)|mail failure|non-?delivery|nondeliverable|message (?:not delivered|delivery has failed|status - undeliverable|you sent blocked)|could not send message|warning: could not send|delivery has failed|loop alert|notice: mail delivery status|postmaster notify|unzustellbar|nicht zustellbar|onbestelbaar|niet afgeleverd|non remis|non distribu|[eé]chec de (?:la )?(?:remise|distribution)|message (?:non|not) delivered|mail system error|delivery notification|mail could not be delivered|error sending message|ndn:|nicht zugestellt|zustellung fehlgeschlagen|niet bezorgd|bezorging mislukt|non consegnato|no se puede entregar|mensaje no entregado|undeliverable message)`)
	// delivery and relay confirmations
	successSubjectRE = newPatternSet(`\((?:success|relay(?:ed)?|delivered)\)|^\s*(?:delivered|relayed|zugestellt|bezorgd|remis)\s*:|successfully delivered|delivery (?:confirmation|receipt)`)
	// subjects that mean a bounce wherever the words are
	bounceSubjectAnyRE = newPatternSet(`undelivered mail returned to sender|returning message to sender|delivery status notification \((?:failure|delay)|mail delivery failed|\. mail failure\.?$`)

	// sentences of mail delivery software
	bounceBodyRE = newPatternSet(`this message was created automatically by mail delivery software|this is the qmail-send program|this is the mail system at host|the original message was received at|delivery has failed to these recipients|did not reach the following recipient|could not be delivered to one or more|delivery to the following recipients? (?:failed|was aborted)|following addresses had (?:permanent fatal|delivery problems|fatal|transient)|i'm afraid i wasn't able to deliver|unable to deliver (?:your )?message to|message could not be delivered|was undeliverable|this is a delivery status notification|automatically generated delivery status notification|your message could not be delivered|error delivering your mail|the following address(?:\(es\)|es)? failed|has not been delivered|non-delivered|not been delivered|was not delivered|could not be delivered|failed permanently|has been delayed|message is delayed|is delayed for|will be retried|original mail as follows|duplicated message-id|was not relayed|requested action not taken|delivery failed|this is the mail(?:er)?[- ]daemon|delivery status notification|message delivery has failed|did not reach some or all|cannot be reached|could not deliver|undeliverable|the following recipients? (?:could not|were affected)|returned mail|zustellung an folgende empf|ist fehlgeschlagen|konnte nicht zugestellt werden|nicht zugestellt|levering aan deze|is mislukt|kon niet worden bezorgd|niet worden afgeleverd|la remise des messages|a échoué|n'a pas pu être remis|n'a pas pu être distribué`)

	// an SMTP reply with an enhanced status code: "550 5.1.1", "#5.1.1"
	smtpCodeRE = mustFindRE(`\b[45]\d\d[ -]#?[245]\.\d{1,3}\.\d{1,3}\b|\(#[245]\.\d{1,3}\.\d{1,3}|\b[45]\d\d [-–] (?:requested|user|mailbox)`)

	// the start of the returned message inside a non-standard bounce
	returnedMarkerRE = mustFindRE(`(?im)^[ \t]*[-=*]*[ \t]*(?:below this line is a copy of the message|this is a copy of the message|original message follows|the header of the original message|original message headers|message headers follow|unsent message follows|below is a copy of the original message|included is a copy of the message header|original mail as follows|a copy of the original message|the original message follows|original message|undelivered message follows|headers of the original message|returned message)\b`)

	// the Message-ID of the returned message written inline
	inlineMsgIDRE = mustFindRE(`(?im)^[ \t>]*message-id:[ \t]*(?:\n[ \t]+)?<([^<>\s]+)>`)
	inlineToRE    = mustFindRE(`(?im)^[ \t]*to:[ \t]*(.+)$`)

	// recipient written in a non-standard notice, most reliable first
	recipientREs = []*findRE{
		mustFindRE(`(?im)^[ \t]*(?:final|original)-recipient:[ \t]*(?:rfc822[ \t]*;)?[ \t]*<?([^\s<>;]+@[^\s<>;]+?)>?[ \t]*$`),
		mustFindRE(`(?i)rcpt to:\s*<([^\s<>]+@[^\s<>]+)>`),
		mustFindRE(`(?i)rcpt to:\s*([^\s<>]+@[^\s<>]+)`),
		mustFindRE(`(?i)(?:recipient address|\baddress|unknown user|unknown recipient|delivering your mail to|deliver(?:ed)? (?:your )?(?:mail|message) to|deliver message to|failed for|undeliverable to|exceeds allowed size|duplicated message-id in)\s*:?\s*<?([^\s<>"]+@[^\s<>"]+?)>?(?:[\s,.;:)\]]|$)`),
		mustFindRE(`(?m)^[ \t]*(?:>>>[ \t]*)?<([^\s<>]+@[^\s<>]+)>[ \t]*(?::|\.\.\.|$|\()`),
		mustFindRE(`(?m)^[ \t]*"?([^\s<>":]+@[^\s<>":]+?)"?[ \t]*:`),
	}
)

// isDaemonSender reports whether the From field looks like mail delivery
// software: MAILER-DAEMON, postmaster, "Mail Delivery System", or an empty
// address ("<>").
func isDaemonSender(fromAddr, fromRaw string) bool {
	if fromAddr == "" {
		t := strings.TrimSpace(fromRaw)
		return t == "" || strings.Contains(t, "<>") || isDaemonName(t)
	}
	local, _, _ := strings.Cut(fromAddr, "@")
	return daemonLocalRE.MatchString(local) || isDaemonName(fromRaw)
}

// isDaemonName matches daemonNameRE, which runs on every message, after a
// test that rules out most senders: each match contains "mail", "deliver",
// "ndr" or "postmaster", of which the test looks for "tma" (the expression
// ignores case, so an 's' could also be a long s, ſ).
func isDaemonName(s string) bool {
	return containsAnyFold(s, "mail", "deliver", "ndr", "tma") && daemonNameRE.MatchString(s)
}

// bounceView is what bounce detection and analysis read.
type bounceView struct {
	p        *parsedMessage
	fromAddr string
	fromRaw  string
	subject  string
	lower    string // subject in lower case, once computed
	lowerSet bool
	notice   string // human-readable notification, without the returned message
	returned string // the returned message written inline, if any
	dsn      []dsnRecipient
	textRead bool
}

func newBounceView(p *parsedMessage, fromAddr, fromRaw, subject string) *bounceView {
	v := &bounceView{p: p, fromAddr: fromAddr, fromRaw: fromRaw, subject: subject}
	for _, d := range p.dsn {
		v.dsn = append(v.dsn, parseDSN(d)...)
	}
	return v
}

// maxNoticeText bounds the bounce text that is read: notices are short and
// the returned message that may follow is not needed in full.
const maxNoticeText = 64 << 10

// readText splits the body into the notification and the returned message;
// only done for messages that may be bounces.
func (v *bounceView) readText() {
	if v.textRead {
		return
	}
	v.textRead = true
	p := v.p
	var text string
	if len(p.plain) > 0 {
		text = strings.Join(p.plain, "\n")
	} else if len(p.html) > 0 {
		text = p.htmlText(0)
	}
	text = truncate(text, maxNoticeText)
	if loc := returnedMarkerRE.FindStringIndex(text); loc != nil {
		v.notice, v.returned = text[:loc[0]], text[loc[0]:]
	} else {
		v.notice = text
	}
}

// isBounce decides whether the message is a non-delivery report. A DSN
// (multipart/report with message/delivery-status) is one unless every
// recipient was delivered; otherwise two independent signals are needed among
// sender, subject and the wording of the body.
func (v *bounceView) isBounce() bool {
	if v.p.reportType == "delivery-status" || len(v.p.dsn) > 0 {
		if len(v.dsn) == 0 {
			return true
		}
		for _, r := range v.dsn {
			switch r.action {
			case "delivered", "relayed", "expanded":
			default:
				return true
			}
		}
		return false // a success notification
	}
	if v.p.reportType != "" && v.p.reportType != "delivery-status" {
		return false // read receipts, abuse reports
	}
	if v.p.hasHeader && v.p.header.Get("X-Failed-Recipients") != "" {
		return true // Exim and others name the failed recipients in a header
	}
	daemon := v.fromDaemon()
	ls := v.lowerSubject()
	subj := bounceSubjectRE.MatchString(ls) || bounceSubjectAnyRE.MatchString(ls)
	if !daemon && !subj {
		return false // every rule below needs one of the two
	}
	if successSubjectRE.MatchString(ls) {
		return false // "Delivery Status Notification (Success)", "Delivered: …"
	}
	v.readText()
	head := truncate(v.notice, 20000)
	lower := strings.ToLower(head)
	smtp := smtpCodeRE.MatchString(head)
	indexed := indexText(lower)
	body := bounceBodyRE.matchText(indexed) || smtp
	// without a daemon sender, the wording is not enough ("Delivery failed:
	// your parcel could not be delivered"): an SMTP reply, a returned message
	// or a recipient address must be there too
	mailish := smtp || len(v.p.returned) > 0 || v.returned != "" ||
		(strings.Contains(lower, "recipient") && addrRE.MatchString(head))
	switch {
	case daemon && (subj || body):
		return true
	case subj && body && mailish:
		return true
	case daemon && len(v.p.returned) > 0:
		return true
	case daemon && (hardReasonRE.matchText(indexed) || softReasonRE.matchText(indexed)):
		return true
	}
	return false
}

// lowerSubject returns the subject in lower case; auto-reply detection
// reads it too.
func (v *bounceView) lowerSubject() string {
	if !v.lowerSet {
		v.lower, v.lowerSet = strings.ToLower(v.subject), true
	}
	return v.lower
}

// fromDaemon reports whether the message comes from mail delivery software.
// Only a From field that is present can say so.
func (v *bounceView) fromDaemon() bool {
	return v.p.hasHeader && v.p.header.Has("From") && isDaemonSender(v.fromAddr, v.fromRaw)
}

// analyse fills the bounce fields of res.
func (v *bounceView) analyse(res *Result, ownAddrs []string) {
	v.readText()
	// the recipient block: the first failed one, else the first delayed one
	var rcpt *dsnRecipient
	for i := range v.dsn {
		if v.dsn[i].action == "failed" {
			rcpt = &v.dsn[i]
			break
		}
	}
	if rcpt == nil {
		for i := range v.dsn {
			if v.dsn[i].final != "" || v.dsn[i].original != "" {
				rcpt = &v.dsn[i]
				break
			}
		}
	}
	reason := v.notice
	dsnStatus := ""
	delayed := false
	if rcpt != nil {
		reason = rcpt.diagnostic + "\n" + rcpt.statusComment + "\n" + v.notice
		dsnStatus = rcpt.status
		delayed = rcpt.action == "delayed"
		res.Recipient = rcpt.final
		if res.Recipient == "" {
			res.Recipient = rcpt.original
		}
	}
	status := dsnStatus
	if status == "" || status == "5.0.0" || status == "4.0.0" {
		if s := textStatus(reason); s != "" {
			status = s
		}
	}
	res.Status = status
	res.BounceClass = reasonClass(reason, status, dsnStatus, delayed)
	if res.Recipient == "" {
		res.Recipient = v.noticeRecipient(ownAddrs)
	}
	if res.Recipient == "" {
		// the To of the returned message names whom we wrote to; the
		// X-Failed-Recipients header may name an expanded alias instead
		to, single := v.returnedRecipient(ownAddrs)
		var failed []string
		if v.p.hasHeader {
			failed = addresses(v.p.header, "X-Failed-Recipients")
		}
		switch {
		case single:
			res.Recipient = to
		case len(failed) > 0:
			res.Recipient = failed[0]
		default:
			res.Recipient = to
		}
	}
	res.OriginalMessageID = v.originalMessageID()
}

// textStatusRE finds an enhanced status code next to an SMTP reply code or in
// a qmail "(#5.1.1)" or "Status:" form.
var textStatusRE = mustFindRE(`(?i)(?:\b[245]\d\d[ -]|#|status:?\s*)([245]\.\d{1,3}\.\d{1,3})\b`)

func textStatus(s string) string {
	if m := textStatusRE.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return ""
}

// noticeRecipient finds the failed recipient in the notification text.
func (v *bounceView) noticeRecipient(own []string) string {
	skip := func(a string) bool {
		a = strings.ToLower(a)
		if a == v.fromAddr {
			return true
		}
		for _, o := range own {
			if a == o {
				return true
			}
		}
		return false
	}
	for _, re := range recipientREs {
		for _, m := range re.FindAllStringSubmatch(v.notice, 8) {
			a := addrRE.FindString(m[1])
			if a != "" && !skip(a) {
				return strings.ToLower(strings.Trim(a, ".'"))
			}
		}
	}
	for _, a := range addrRE.FindAllString(v.notice, 32) {
		a = strings.Trim(a, ".'")
		if !skip(a) && !strings.Contains(strings.ToLower(a), "mailer-daemon") {
			return strings.ToLower(a)
		}
	}
	return ""
}

// returnedRecipient takes the first address in the To of the returned
// message; single says whether To named just that one.
func (v *bounceView) returnedRecipient(own []string) (string, bool) {
	for _, r := range v.p.returned {
		if r.header.Len() == 0 {
			continue
		}
		if as := addresses(r.header, "To"); len(as) > 0 && !contains(own, as[0]) {
			return as[0], len(as) == 1
		}
	}
	if v.returned != "" {
		if m := inlineToRE.FindStringSubmatch(v.returned); m != nil {
			as := addrRE.FindAllString(m[1], -1)
			if len(as) > 0 && !contains(own, strings.ToLower(as[0])) {
				return strings.ToLower(as[0]), len(as) == 1
			}
		}
	}
	return "", false
}

// originalMessageID finds the Message-ID of the returned message.
func (v *bounceView) originalMessageID() string {
	for _, r := range v.p.returned {
		if r.header.Len() > 0 {
			if ids := msgIDs(r.header, "Message-Id"); len(ids) > 0 {
				return ids[0]
			}
		}
		if m := inlineMsgIDRE.FindStringSubmatch(r.text); m != nil {
			return m[1]
		}
	}
	for _, t := range []string{v.returned, v.notice} {
		if m := inlineMsgIDRE.FindStringSubmatch(t); m != nil {
			return m[1]
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
