package replies

import (
	"regexp"
	"strings"
)

// Auto-reply detection (RFC 3834 and the usual vendor headers and subjects).

var (
	// subjects that say "auto-reply" wherever the words are
	oooSubjectRE = newPatternSet(`out[- ]of[- ](?:the[- ])?office|automatic reply|automatic response|auto[- ]?reply|auto[- ]?response|autoreply|auto[- ]?respond|automatische antwort|automatische r[uü]ckantwort|abwesenheitsnotiz|abwesenheitsnachricht|automatisch antwoord|automatisch bericht|afwezigheidsbericht|afwezigheidsmelding|r[eé]ponse automatique|message d'absence|absence du bureau|nicht im b[uü]ro|niet op kantoor|niet aanwezig|vacation (?:reply|notice|alert|message|response|autoreply)|on vacation|away from (?:the |my )?(?:office|desk|e-?mail|mail)|^\s*auto:|\booo\b|respuesta autom[aá]tica|fuera de (?:la )?oficina|risposta automatica|fuori (?:sede|ufficio)|resposta autom[aá]tica|fora do escrit[oó]rio|autosvar|fr[aå]nvaro|frav[æe]r|automaattinen vastaus|autoodpowied[zź]|automatyczna odpowied[zź]|nieobecno[sś][cć]|automatick[aá] odpov[eě][dď]|automatikus v[aá]lasz|otomatik yan[ıi]t|автоответ|автоматический ответ`)
	// subjects that say it only at the start, followed by ":" or a date cue
	awaySubjectRE = mustStartRE(`^\s*(?:away|vacation|holiday|on leave|afwezig|met vakantie|vakantie|abwesend|urlaub|absent|absente|absence|cong[eé]s?|en cong[eé])\b\s*(?::|until|till|from|through|tot|t/m|bis|vom|ab|jusqu|du|van|\(|-|–|$)`)
	// subjects of acknowledgement auto-replies, trusted with a bulk header
	ackSubjectRE = mustStartRE(`^\s*(?:thank you for (?:your )?(?:e-?mail|message|mail|contacting|inquiry|enquiry|reaching out)|thanks for (?:your )?(?:e-?mail|message|mail|contacting|reaching out)|we(?:'ve| have) received your|danke f[uü]r ihre (?:nachricht|e-?mail|anfrage)|vielen dank f[uü]r ihre (?:nachricht|e-?mail|anfrage)|bedankt voor (?:je|uw) (?:bericht|e-?mail|mail)|merci pour votre (?:message|e-?mail|courriel))`)
	// "Re:", "AW:", "Antw:", "SV:", "TR:", "Fwd:" …
	replyPrefixRE = mustStartRE(`(?i)^\s*(?:re|aw|antw|antwort|sv|vs|wg|fw|fwd|tr|rif|ref)\s*(?:\[\d+\])?\s*:`)
)

// isAutoReply decides whether a message that is not a bounce is an
// automatic reply. ls is the subject in lower case, threaded says whether
// the message refers to an earlier one.
func isAutoReply(h header, subject, ls string, threaded bool) bool {
	bulkList := h.Get("List-Unsubscribe") != "" || h.Get("List-Id") != ""
	ooo := oooSubjectRE.MatchString(ls)
	away := awaySubjectRE.MatchString(ls)
	ack := ackSubjectRE.MatchString(ls)

	if as := strings.ToLower(strings.TrimSpace(h.Get("Auto-Submitted"))); as != "" && !strings.HasPrefix(as, "no") {
		if strings.HasPrefix(as, "auto-replied") {
			return true
		}
		// auto-generated, auto-notified: a notification unless it answers
		// one of our messages or says it is an auto-reply
		if threaded || ooo || away || ack {
			return true
		}
	}
	for _, k := range autoReplyFlags {
		if v := strings.ToLower(strings.TrimSpace(h.Get(k))); v != "" && v != "no" && v != "false" && v != "0" {
			return true
		}
	}
	if strings.EqualFold(strings.TrimSpace(h.Get("X-Apple-Action")), "vacation") {
		return true
	}
	prec := strings.ToLower(strings.TrimSpace(h.Get("Precedence")))
	if prec == "auto_reply" || prec == "auto-reply" {
		return true
	}
	// the subject alone, unless it is a human answer ("Re: …")
	if (ooo || away) && !bulkList && !replyPrefixRE.MatchString(subject) {
		return true
	}
	msHeaders := h.Get("X-Auto-Response-Suppress") != "" || h.Get("X-Ms-Exchange-Inbox-Rules-Loop") != ""
	if msHeaders && ack && !bulkList {
		return true
	}
	if (prec == "bulk" || prec == "junk" || prec == "list") && !bulkList && (ack || ooo || away) {
		return true
	}
	return false
}

// autoReplyFlags are header fields that mark an auto-reply unless they say
// "no".
var autoReplyFlags = []string{"X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Reply", "X-Vacation"}

// isBulk reports whether a message looks like a newsletter or notification.
func isBulk(h header, fromAddr string) bool {
	if h.Get("List-Unsubscribe") != "" || h.Get("List-Id") != "" || h.Get("List-Post") != "" {
		return true
	}
	switch strings.ToLower(strings.TrimSpace(h.Get("Precedence"))) {
	case "bulk", "list", "junk":
		return true
	}
	if as := strings.ToLower(strings.TrimSpace(h.Get("Auto-Submitted"))); as != "" && !strings.HasPrefix(as, "no") {
		return true
	}
	local, _, _ := strings.Cut(fromAddr, "@")
	local = strings.ReplaceAll(strings.ReplaceAll(local, "-", ""), "_", "")
	return strings.HasPrefix(local, "noreply") || strings.HasPrefix(local, "donotreply") ||
		local == "notifications" || local == "notification" || local == "newsletter"
}

var (
	readSubjectRE = mustStartRE(`(?i)^\s*(?:read|not read|gelesen|ungelesen|gelezen|niet gelezen|lu|non lu)\s*:`)
	readBodyRE    = regexp.MustCompile(`(?i)\bwas read\b|\bwurde .{0,40}gelesen|\bis .{0,40}gelezen|\ba été lu|\bwas deleted without being read|\bgelöscht, ohne gelesen`)
)

// isReadReceipt recognises plain-text read receipts ("Read: …").
func isReadReceipt(subject, body string) bool {
	if !readSubjectRE.MatchString(subject) {
		return false
	}
	return readBodyRE.MatchString(truncate(body, 4096))
}
