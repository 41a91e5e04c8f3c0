package replies

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// All messages in these tests are written for them; none comes from a corpus.

// msg builds a simple text/plain reply to one of our messages.
func msg(date, from, subject, body string, extra ...string) []byte {
	var b strings.Builder
	b.WriteString("From: " + from + "\r\n")
	b.WriteString("To: Sam Seller <sam@seller.example>\r\n")
	b.WriteString("Subject: " + subject + "\r\n")
	b.WriteString("Date: " + date + "\r\n")
	b.WriteString("Message-ID: <reply-1@client.example>\r\n")
	b.WriteString("In-Reply-To: <out-1@mail.seller.example>\r\n")
	b.WriteString("References: <out-0@mail.seller.example> <out-1@mail.seller.example>\r\n")
	for _, e := range extra {
		b.WriteString(e + "\r\n")
	}
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	b.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	return []byte(b.String())
}

var now = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

const quotedOriginal = `
On Tue, Nov 3, 2026 at 9:00 AM Sam Seller <sam@seller.example> wrote:
> Hi,
>
> Would a 20-minute call next week make sense?
>
> Sam
>
> Not interested? Unsubscribe: https://seller.example/u/abc
`

func TestIntent(t *testing.T) {
	const date = "Wed, 4 Nov 2026 10:00:00 +0100"
	tests := []struct {
		name     string
		body     string
		intent   Intent
		until    string // YYYY-MM-DD for not_now
		referral string
	}{
		// English
		{"en interested", "Yes, let's talk. Thursday at 2pm works for me.\n" + quotedOriginal, IntentInterested, "", ""},
		{"en interested info", "Could you send me more info and the pricing sheet?\n" + quotedOriginal, IntentInterested, "", ""},
		{"en not interested", "Not interested, thanks.\n" + quotedOriginal, IntentNotInterested, "", ""},
		{"en not interested gap", "We're not really interested in this.\n" + quotedOriginal, IntentNotInterested, "", ""},
		{"en all set", "Thanks Sam, but we're all set.\n" + quotedOriginal, IntentNotInterested, "", ""},
		{"en not now Q1", "Not right now. Reach out in Q1 and we can talk.\n" + quotedOriginal, IntentNotNow, "2027-01-01", ""},
		{"en not now january", "Swamped until the new year - circle back in January?\n" + quotedOriginal, IntentNotNow, "2027-01-01", ""},
		{"en not now next month", "Bad timing, can you follow up next month?\n" + quotedOriginal, IntentNotNow, "2026-12-01", ""},
		{"en not now weeks", "We're too busy at the moment. Try again in 3 weeks.\n" + quotedOriginal, IntentNotNow, "2026-11-25", ""},
		{"en not now holidays", "Let's pick this up after the holidays.\n" + quotedOriginal, IntentNotNow, "2027-01-01", ""},
		{"en not now explicit", "Ping me after March 15th, please.\n" + quotedOriginal, IntentNotNow, "2027-03-15", ""},
		{"en not now no date", "Not at the moment, sorry.\n" + quotedOriginal, IntentNotNow, "", ""},
		// the decision on "not interested right now": the time qualifier wins
		{"en not interested right now", "I'm not interested right now.\n" + quotedOriginal, IntentNotNow, "", ""},
		{"en referral", "I'm not the right person. You should speak with Dana at dana.fox@client.example, she runs purchasing.\n" + quotedOriginal, IntentReferral, "", "dana.fox@client.example"},
		{"en referral no address", "Sorry, wrong person - talk to my colleague in logistics.\n" + quotedOriginal, IntentReferral, "", ""},
		{"en unsubscribe", "Please remove me from your list.\n" + quotedOriginal, IntentUnsubscribe, "", ""},
		{"en unsubscribe stop", "Stop emailing me.\n" + quotedOriginal, IntentUnsubscribe, "", ""},
		{"en other question", "Does it integrate with SAP?\n" + quotedOriginal, IntentOther, "", ""},
		{"en other thanks", "Thanks\n" + quotedOriginal, IntentOther, "", ""},
		// quoted-text traps: the quoted footer says "Not interested? Unsubscribe"
		{"trap quoted negative", "Yes, let's talk.\n" + quotedOriginal, IntentInterested, "", ""},
		{"trap negated interest", "I don't think this sounds good for us, no thanks.\n" + quotedOriginal, IntentNotInterested, "", ""},
		{"trap unsubscribe in signature-less footer quoted", "Sounds good, send me a calendar invite.\n\n> Unsubscribe: https://seller.example/u/x\n", IntentInterested, "", ""},
		{"trap dont unsubscribe", "Please don't unsubscribe me, I'm interested, just busy this week. Let's talk on Monday.\n", IntentInterested, "", ""},

		// Dutch
		{"nl interested", "Ja, graag. Bel me donderdag maar.\n\nOp di 3 nov. 2026 om 10:12 schreef Sam Seller <sam@seller.example>:\n> Hoi,\n", IntentInterested, "", ""},
		{"nl not interested", "Bedankt, maar wij hebben geen interesse.\n", IntentNotInterested, "", ""},
		{"nl not now", "Nu even niet. Neem in maart weer contact op.\n", IntentNotNow, "2027-03-01", ""},
		{"nl not now later", "Op dit moment niet, misschien later dit jaar.\n", IntentNotNow, "", ""},
		{"nl referral", "Daar ga ik niet over. Neem contact op met mijn collega Jan (jan@klant.example).\n", IntentReferral, "", "jan@klant.example"},
		{"nl unsubscribe", "Graag uitschrijven.\n\nVerstuurd vanaf mijn iPhone\n", IntentUnsubscribe, "", ""},

		// German
		{"de interested", "Klingt gut, rufen Sie mich bitte an.\n\nAm 03.11.2026 um 09:30 schrieb Sam Seller <sam@seller.example>:\n> Hallo,\n", IntentInterested, "", ""},
		{"de not interested", "Kein Interesse, danke.\n", IntentNotInterested, "", ""},
		{"de not interested post-verbal", "Das interessiert uns nicht.\n", IntentNotInterested, "", ""},
		{"de not now", "Momentan nicht, melden Sie sich im Frühjahr wieder.\n", IntentNotNow, "2027-03-01", ""},
		{"de referral", "Dafür bin ich nicht zuständig, wenden Sie sich an k.meier@kunde.example.\n", IntentReferral, "", "k.meier@kunde.example"},
		{"de unsubscribe", "Bitte austragen.\n", IntentUnsubscribe, "", ""},

		// French
		{"fr interested", "Oui, ça m'intéresse. Je suis disponible mardi.\n\nLe mar. 3 nov. 2026 à 10:05, Sam Seller <sam@seller.example> a écrit :\n> Bonjour,\n", IntentInterested, "", ""},
		{"fr not interested", "Merci, mais ça ne nous intéresse pas.\n", IntentNotInterested, "", ""},
		{"fr not interested ne pas", "Nous ne sommes pas intéressés.\n", IntentNotInterested, "", ""},
		{"fr not now", "Pas pour le moment, recontactez-moi en janvier.\n", IntentNotNow, "2027-01-01", ""},
		{"fr referral", "Je ne suis pas la bonne personne, contactez ma collègue claire@client.example.\n", IntentReferral, "", "claire@client.example"},
		{"fr unsubscribe", "Merci de me désinscrire.\n", IntentUnsubscribe, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := Classify(msg(date, "Pat Client <pat@client.example>", "Re: Quick follow-up", tc.body), now)
			if res.Kind != KindReply {
				t.Fatalf("kind = %s, want reply", res.Kind)
			}
			if res.Intent != tc.intent {
				t.Errorf("intent = %s, want %s (text %q)", res.Intent, tc.intent, res.Text)
			}
			if got := fmtDate(res.Until); got != tc.until {
				t.Errorf("until = %q, want %q", got, tc.until)
			}
			if res.Referral != tc.referral {
				t.Errorf("referral = %q, want %q", res.Referral, tc.referral)
			}
		})
	}
}

func TestReferralFromCc(t *testing.T) {
	raw := msg("Wed, 4 Nov 2026 10:00:00 +0100", "pat@client.example", "Re: hello",
		"Cc'ing Robin who handles this for us.\n", "Cc: Robin <robin@client.example>, sam@seller.example")
	res := Classify(raw, now)
	if res.Intent != IntentReferral || res.Referral != "robin@client.example" {
		t.Errorf("got %s %q, want referral robin@client.example", res.Intent, res.Referral)
	}
}

func TestReturnDate(t *testing.T) {
	tests := []struct {
		name, date, subject, body, want string
		headers                         []string
	}{
		{"en back on", "Mon, 23 Nov 2026 09:00:00 +0000", "Out of Office: Quick follow-up",
			"I am out of the office and will be back on Monday 7 December.", "2026-12-07", nil},
		{"en until", "Mon, 23 Nov 2026 09:00:00 +0000", "Automatic reply: Quick follow-up",
			"I'm on leave until 4 December with no access to email.", "2026-12-05", []string{"Auto-Submitted: auto-replied"}},
		{"en numeric us", "Mon, 23 Nov 2026 09:00:00 -0500", "Out of Office",
			"Thanks for your note. I'm travelling and back on 12/7.", "2026-12-07", nil},
		{"en through", "Fri, 18 Dec 2026 09:00:00 +0000", "Auto-Reply: Re: Quick follow-up",
			"Our office is closed through January 3rd, 2027.", "2027-01-04", []string{"X-Autoreply: yes"}},
		{"en year wrap", "Mon, 21 Dec 2026 09:00:00 +0000", "Out of Office",
			"Back on January 4.", "2027-01-04", nil},
		{"nl tot en met", "Mon, 30 Nov 2026 08:00:00 +0000", "Automatisch antwoord: Even opvolgen",
			"Ik ben afwezig tot en met vrijdag 4 december.", "2026-12-05", []string{"Auto-Submitted: auto-generated"}},
		{"nl terug op", "Mon, 30 Nov 2026 08:00:00 +0000", "Afwezig: Even opvolgen",
			"Ik ben weer terug op maandag 14 december.", "2026-12-14", nil},
		{"de bis zum", "Tue, 24 Nov 2026 09:20:00 +0100", "Abwesenheitsnotiz: Kurze Nachfrage",
			"Ich bin bis zum 4. Dezember nicht im Büro.", "2026-12-05", []string{"Auto-Submitted: auto-replied"}},
		{"de ab dem", "Tue, 24 Nov 2026 09:20:00 +0100", "Automatische Antwort: Kurze Nachfrage",
			"Ab dem 7.12. bin ich wieder erreichbar.", "2026-12-07", nil},
		{"de einschließlich", "Tue, 24 Nov 2026 09:20:00 +0100", "Abwesenheitsnotiz",
			"Ich bin bis einschließlich 7.12.2026 nicht im Büro.", "2026-12-08", nil},
		{"fr jusqu'au", "Fri, 27 Nov 2026 10:00:00 +0100", "Réponse automatique : Suite",
			"Je suis absente jusqu'au 4 décembre inclus.", "2026-12-05", []string{"Auto-Submitted: auto-replied"}},
		{"fr de retour", "Fri, 27 Nov 2026 10:00:00 +0100", "Absence du bureau",
			"Je serai de retour le 8 décembre.", "2026-12-08", nil},
		{"subject", "Fri, 27 Nov 2026 10:00:00 +0100", "Out of office until 4 December",
			"I have no access to e-mail.", "2026-12-05", nil},
		{"back next week", "Wed, 25 Nov 2026 10:00:00 +0000", "Automatic reply: Suite",
			"I'm travelling and will be back next week.", "2026-11-30", []string{"Auto-Submitted: auto-replied"}},
		{"none", "Fri, 27 Nov 2026 10:00:00 +0100", "Automatic reply: Suite",
			"I'm travelling with limited access to email.", "", []string{"Auto-Submitted: auto-replied"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := Classify(msg(tc.date, "pat@client.example", tc.subject, tc.body, tc.headers...), now)
			if res.Kind != KindAutoReply {
				t.Fatalf("kind = %s, want autoreply", res.Kind)
			}
			if got := fmtDate(res.ReturnDate); got != tc.want {
				t.Errorf("return date = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestKinds(t *testing.T) {
	newsletter := "From: News <news@shop.example>\r\nTo: sam@seller.example\r\nSubject: Our summer vacation deals\r\n" +
		"Date: Mon, 2 Nov 2026 08:00:00 +0000\r\nPrecedence: bulk\r\nList-Unsubscribe: <https://shop.example/u>\r\n" +
		"Content-Type: text/plain\r\n\r\nBig sale. Unsubscribe at any time.\r\n"
	notification := "From: CI <noreply@ci.example>\r\nTo: sam@seller.example\r\nSubject: Build passed\r\n" +
		"Auto-Submitted: auto-generated\r\nContent-Type: text/plain\r\n\r\nAll green.\r\n"
	ackBulk := "From: Support <help@vendor.example>\r\nTo: sam@seller.example\r\nSubject: Thank you for your e-mail\r\n" +
		"Precedence: bulk\r\nReturn-Path: <>\r\n\r\nWe will reply as soon as possible.\r\n"
	readReceipt := "From: pat@client.example\r\nTo: sam@seller.example\r\nSubject: Read: Quick follow-up\r\n" +
		"Content-Type: multipart/report; report-type=disposition-notification; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nYour message was read.\r\n--b\r\nContent-Type: message/disposition-notification\r\n\r\n" +
		"Disposition: manual-action/MDN-sent-manually; displayed\r\n--b--\r\n"
	tests := []struct {
		name string
		raw  []byte
		want Kind
	}{
		{"newsletter", []byte(newsletter), KindOther},
		{"notification", []byte(notification), KindOther},
		{"ack with bulk", []byte(ackBulk), KindAutoReply},
		{"read receipt", []byte(readReceipt), KindOther},
		{"plain read receipt", msg("Mon, 2 Nov 2026 08:00:00 +0000", "pat@client.example", "Read: Quick follow-up",
			"Your message\n\n  To: Pat\n  Subject: Quick follow-up\n\nwas read on Monday, November 2, 2026 8:00 AM."), KindOther},
		{"success dsn", []byte("From: Mail Delivery Subsystem <mailer-daemon@googlemail.example>\r\nSubject: Delivery Status Notification (Success)\r\n\r\n" +
			"This is an automatically generated Delivery Status Notification.\r\n\r\nYour message has been successfully relayed to the following recipients.\r\n"), KindOther},
		{"subject-only ooo", msg("Mon, 2 Nov 2026 08:00:00 +0000", "pat@client.example", "Out of Office: Quick follow-up", "I am away."), KindAutoReply},
		{"human reply about vacation", msg("Mon, 2 Nov 2026 08:00:00 +0000", "pat@client.example", "Re: Vacation planning", "Sounds good, let's talk."), KindReply},
		{"no headers", []byte("Just a body.\nWith two lines.\n"), KindReply},
		{"fresh mail from a person", []byte("From: pat@client.example\r\nSubject: hello\r\n\r\nAre you free tomorrow?\r\n"), KindReply},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.raw, now).Kind; got != tc.want {
				t.Errorf("kind = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestHeaders(t *testing.T) {
	raw := "From: =?UTF-8?Q?J=C3=B6rg_Hansen?= <J.Hansen@Client.Example>\r\n" +
		"To: sam@seller.example\r\n" +
		"Subject: =?ISO-8859-1?Q?Re:_Gr=FC=DFe?=\r\n" +
		"Date: Tue, 17 Nov 2026 07:52:18 +0100\r\n" +
		"Message-ID: <abc@client.example>\r\n" +
		"In-Reply-To: <out-2@seller.example>\r\n" +
		"References: <out-1@seller.example>\r\n <out-2@seller.example>\r\n\r\nKein Bedarf.\r\n"
	res := Classify([]byte(raw), now)
	if res.From != "j.hansen@client.example" {
		t.Errorf("from = %q", res.From)
	}
	if res.Subject != "Re: Grüße" {
		t.Errorf("subject = %q", res.Subject)
	}
	if res.MessageID != "abc@client.example" {
		t.Errorf("message id = %q", res.MessageID)
	}
	if got := strings.Join(res.InReplyTo, " "); got != "out-2@seller.example out-1@seller.example" {
		t.Errorf("in-reply-to = %q", got)
	}
	if !res.Date.Equal(time.Date(2026, 11, 17, 6, 52, 18, 0, time.UTC)) {
		t.Errorf("date = %v", res.Date)
	}
	if res.Intent != IntentNotInterested {
		t.Errorf("intent = %s", res.Intent)
	}
}

// Headers gives the Message-ID, From and Subject that Classify gives: the
// watcher deduplicates by the first and Ingest stores Classify's.
func TestHeadersAgreeWithClassify(t *testing.T) {
	msgs := append(testdataMessages(t), corpusMessages(t)...)
	msgs = append(msgs, []byte("no header at all"), nil, []byte("From: <a@b.example>\r\nSubject: only\r\n"))
	withID := 0
	for _, raw := range msgs {
		id, from, subject := Headers(raw)
		res := Classify(raw, now)
		if id != res.MessageID || from != res.From || subject != res.Subject {
			t.Fatalf("Headers = %q %q %q, Classify = %q %q %q for:\n%.300s", id, from, subject, res.MessageID, res.From, res.Subject, raw)
		}
		if id != "" {
			withID++
		}
	}
	if withID < 5 {
		t.Fatalf("only %d of %d messages had a Message-ID: the test compares too little", withID, len(msgs))
	}
}

// TestCharsets reads the hand-written messages in testdata/ that use legacy
// charsets and transfer encodings.
func TestCharsets(t *testing.T) {
	tests := []struct {
		file, wantText string
		intent         Intent
	}{
		{"latin1-qp.eml", "Vielen Dank für Ihre Nachricht. Leider kein Interesse, wir sind mit unserem Anbieter zufrieden.\n\nGrüße aus München", IntentNotInterested},
		{"utf8-base64.eml", "Ça m'intéresse ! Appelez-moi demain à 10h.\n\nÉlodie", IntentInterested},
		{"cp1252.eml", "Not right now – we’re in the middle of a move. Check back in Q2.\n\nOliver", IntentNotNow},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			res := Classify(raw, now)
			if res.Text != tc.wantText {
				t.Errorf("text = %q\nwant  %q", res.Text, tc.wantText)
			}
			if res.Intent != tc.intent {
				t.Errorf("intent = %s, want %s", res.Intent, tc.intent)
			}
		})
	}
}

func TestBounces(t *testing.T) {
	tests := []struct {
		file, class, recipient, status, origID string
	}{
		{"bounce-dsn-headers.eml", "hard", "lee.park@client.example", "5.1.1", "out-42.7f3a@mail.seller.example"},
		{"bounce-exim.eml", "soft", "jo@client.example", "5.2.2", "out-43.9c1d@mail.seller.example"},
		{"bounce-qmail.eml", "", "max@client.example", "5.7.1", "out-44.1e2f@mail.seller.example"},
		{"bounce-delayed.eml", "soft", "kim@client.example", "4.4.7", "out-45.aa01@mail.seller.example"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			res := Classify(raw, now)
			if res.Kind != KindBounce {
				t.Fatalf("kind = %s, want bounce", res.Kind)
			}
			if res.BounceClass != tc.class || res.Recipient != tc.recipient || res.Status != tc.status || res.OriginalMessageID != tc.origID {
				t.Errorf("got class=%q rcpt=%q status=%q orig=%q\nwant class=%q rcpt=%q status=%q orig=%q",
					res.BounceClass, res.Recipient, res.Status, res.OriginalMessageID,
					tc.class, tc.recipient, tc.status, tc.origID)
			}
		})
	}
}

func TestReasonClass(t *testing.T) {
	tests := []struct {
		reason, status, want string
	}{
		{"550 5.1.1 <a@b.example>: Recipient address rejected: User unknown in local recipient table", "5.1.1", "hard"},
		{"552 5.2.2 Mailbox full", "5.2.2", "soft"},
		{"550 5.1.1 sorry, mailbox a@b.example is over quota temporarily", "5.1.1", "soft"},
		{"554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org", "5.7.1", ""},
		{"550 5.7.1 Message rejected as spam", "5.7.1", ""},
		{"552 5.3.4 Message size exceeds fixed limit", "5.3.4", ""},
		{"552 5.2.3 Message length exceeds administrative limit", "5.2.3", "soft"},
		{"421 4.7.0 Try again later, closing connection", "4.7.0", "soft"},
		{"550 5.1.2 Host unknown (Name server: x.example: host not found)", "5.1.2", "hard"},
		{"553 5.1.8 Sender address rejected: Domain not found", "5.1.8", ""},
		{"550 5.4.1 Recipient address rejected: Access denied", "5.4.1", "hard"},
		{"The email account that you tried to reach does not exist.", "5.1.1", "hard"},
		{"The email account that you tried to reach is disabled.", "5.2.1", "soft"},
		{"", "5.1.1", "hard"},
		{"", "4.2.0", "soft"},
		{"", "5.0.0", ""},
	}
	for _, tc := range tests {
		if got := reasonClass(tc.reason, tc.status, "", false); got != tc.want {
			t.Errorf("reasonClass(%q, %s) = %q, want %q", tc.reason, tc.status, got, tc.want)
		}
	}
}

func TestBounceBeforeAutoReply(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "bounce-exim.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "Auto-Submitted: auto-replied") {
		t.Fatal("test message should carry Auto-Submitted: auto-replied")
	}
	if got := Classify(raw, now).Kind; got != KindBounce {
		t.Errorf("kind = %s, want bounce", got)
	}
}

func TestHTMLOnlyReply(t *testing.T) {
	raw := "From: pat@client.example\r\nTo: sam@seller.example\r\nSubject: Re: hi\r\n" +
		"In-Reply-To: <out-1@mail.seller.example>\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
		`<div dir="ltr">Sounds good &amp; let&#39;s talk <b>Tuesday</b>.<br><br>Pat</div>` +
		`<div class="gmail_quote"><div class="gmail_attr">On Mon, Nov 2, 2026 Sam wrote:</div>` +
		`<blockquote class="gmail_quote">Not interested? <a href="https://seller.example/u/x">Unsubscribe</a></blockquote></div>`
	res := Classify([]byte(raw), now)
	if res.Text != "Sounds good & let's talk Tuesday.\n\nPat" {
		t.Errorf("text = %q", res.Text)
	}
	if res.Intent != IntentInterested {
		t.Errorf("intent = %s", res.Intent)
	}
}

func TestVisibleText(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"gmail attribution wrapped", "Great, thanks!\n\nOn Tue, Nov 3, 2026 at 4:12 AM Sam Seller <sam@seller.example>\nwrote:\n> Hi\n", "Great, thanks!"},
		{"dutch attribution", "Prima.\n\nOp 23 nov 2026 om 10:12 heeft Sam Seller <sam@seller.example> het volgende geschreven:\n\n> Hoi\n", "Prima."},
		{"german attribution", "Gerne.\n\nAm 11.11.26 um 10:30 schrieb Sam Seller:\n> Hallo\n", "Gerne."},
		{"french attribution", "D'accord.\n\nLe jeu. 5 nov. 2026 à 10:05, Sam <sam@seller.example> a écrit :\n> Bonjour\n", "D'accord."},
		{"outlook block", "Fine by me.\n\nFrom: Sam Seller <sam@seller.example>\nSent: Tuesday, November 17, 2026 8:20 AM\nTo: Pat\nSubject: Hello\n\nHi Pat", "Fine by me."},
		{"outlook dutch block", "Akkoord.\n\nVan: Sam Seller <sam@seller.example>\nVerzonden: dinsdag 3 november 2026 10:12\nAan: Joost\nOnderwerp: Hallo\n\nHoi", "Akkoord."},
		{"outlook german block", "Ok.\n\nVon: Sam Seller <sam@seller.example>\nGesendet: Montag, 23. November 2026 14:30\nAn: Petra\nBetreff: Hallo\n", "Ok."},
		{"outlook french block", "Ok.\n\nDe : Sam Seller <sam@seller.example>\nEnvoyé : lundi 23 novembre 2026 14:30\nÀ : Claire\nObjet : Bonjour\n", "Ok."},
		{"original message", "See below.\n\n-----Original Message-----\nFrom: Sam\n\nHi", "See below."},
		{"underscores", "Thanks\n\n________________________________\nFrom: Sam\n", "Thanks"},
		{"forwarded", "FYI\n\nBegin forwarded message:\n\nFrom: Sam", "FYI"},
		{"interleaved", "On Mon, Nov 2, 2026, Sam <sam@seller.example> wrote:\n> Question one?\n\nAnswer one.\n\n> Question two?\n\nAnswer two.\n", "Answer one.\n\nAnswer two."},
		{"dash signature", "Hello there\n\n-- \nPat Client\nCEO", "Hello there"},
		{"iphone", "Ok!\n\nSent from my iPhone", "Ok!"},
		{"dutch iphone", "Ok!\n\nVerstuurd vanaf mijn iPhone", "Ok!"},
		{"german iphone", "Ok!\n\nVon meinem iPhone gesendet", "Ok!"},
		{"french iphone", "Ok!\n\nEnvoyé de mon iPhone", "Ok!"},
		{"outlook mobile", "Ok!\n\nGet Outlook for iOS", "Ok!"},
		{"not a signature", "Sent from my desk, which is quieter than the office.", "Sent from my desk, which is quieter than the office."},
		{"unprefixed history after attribution", "Will do.\n\n--- On Wed, 4/4/12, sam@seller.example <sam@seller.example> wrote:\n\nFrom: sam@seller.example\nSubject: hi", "Will do."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := VisibleText(tc.in); got != tc.want {
				t.Errorf("VisibleText = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRulesWith(t *testing.T) {
	raw := msg("Wed, 4 Nov 2026 10:00:00 +0100", "pat@client.example", "Re: hi", "Ask me again when the merger closes.\n")
	if got := Classify(raw, now).Intent; got != IntentOther {
		t.Fatalf("default intent = %s, want other", got)
	}
	r := DefaultRules().With(IntentNotNow, "en", "ask me again")
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := r.Classify(raw, now).Intent; got != IntentNotNow {
		t.Errorf("extended intent = %s, want not_now", got)
	}
	// the defaults are not changed by With
	if got := Classify(raw, now).Intent; got != IntentOther {
		t.Errorf("default intent after With = %s, want other", got)
	}
	bad := Rules{Intents: []IntentRule{{Intent: "maybe", Phrases: []string{"x"}}}}
	if bad.Validate() == nil {
		t.Error("Validate accepted an unknown intent")
	}
}

func TestRobustness(t *testing.T) {
	inputs := [][]byte{
		nil,
		[]byte(""),
		[]byte("\x00\x01\x02\xff\xfe garbage \x80\x81"),
		[]byte("Subject: no body"),
		[]byte("Content-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n"), // unterminated
		[]byte("Content-Type: multipart/mixed\r\n\r\nno boundary"),
		[]byte("Content-Type: text/plain; charset=x-unknown-charset\r\n\r\nhello \xe9"),
		[]byte("Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!"),
		[]byte("Content-Type: message/delivery-status\r\n\r\nAction failed\nStatus"),
		[]byte(strings.Repeat("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n", 50)),
		[]byte("From: <>\r\nSubject: Undeliverable\r\n\r\n" + strings.Repeat("<a@b.c>: ", 1000)),
	}
	for i, in := range inputs {
		res := (DefaultRules()).classify(in, now) // no recover: a panic fails the test
		if res.Kind == "" {
			t.Errorf("input %d: empty kind", i)
		}
	}
}

// TestLargeInputs guards against quadratic behaviour: megabyte-sized bodies
// built to produce many matches must still be classified quickly.
func TestLargeInputs(t *testing.T) {
	big := func(head, rep string, n int) []byte { return []byte(head + strings.Repeat(rep, n)) }
	inputs := map[string][]byte{
		"phrases":   big("From: a@b.example\nIn-Reply-To: <x@y>\n\n", "not interested right now in march 12/7 q1 ", 20000),
		"bounce":    big("From: MAILER-DAEMON@x.example\nSubject: Undeliverable\n\n", "<a@b.example>: 550 5.1.1 user unknown mailbox full\n", 20000),
		"autoreply": big("From: a@b.example\nSubject: Out of office\n\n", "back on monday 7 december until 4.12. ", 30000),
		"quotes":    big("From: a@b.example\n\n", "On Mon, Nov 2, 2026 at 10:00 Sam <s@x.example>\n> hi\n", 20000),
		"html":      big("Content-Type: text/html\n\n", "<div class=\"gmail_quote\"><blockquote><p>", 30000),
		"headers":   big("", "X-A: b\n", 100000),
	}
	for name, raw := range inputs {
		start := time.Now()
		DefaultRules().classify(raw, now)
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s (%d bytes) took %v", name, len(raw), d)
		}
	}
}

// TestBounceFormats covers common non-delivery formats, written for this
// test in the style of Office 365, Gmail, Yahoo, Domino, Exchange (in
// English, German, Dutch and French) and Postfix.
func TestBounceFormats(t *testing.T) {
	cases := []struct{ name, raw, class, rcpt string }{
		{"o365", `From: Microsoft Outlook <postmaster@contoso.onmicrosoft.example>
To: sam@seller.example
Subject: Undeliverable: Quick follow-up
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain; charset=us-ascii

Your message to jane@fabrikam.example couldn't be delivered.
jane wasn't found at fabrikam.example.

--b
Content-Type: message/delivery-status

Reporting-MTA: dns;BN8PR.prod.outlook.example

Final-recipient: RFC822; jane@fabrikam.example
Action: failed
Status: 5.1.10
Diagnostic-code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup

--b--
`, "hard", "jane@fabrikam.example"},
		{"gmail", `From: Mail Delivery Subsystem <mailer-daemon@googlemail.example>
To: sam@seller.example
Subject: Delivery Status Notification (Failure)
Content-Type: text/plain; charset=UTF-8

** Address not found **

Your message wasn't delivered to bob@client.example because the address couldn't be found, or is unable to receive mail.

The response from the remote server was:
550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces.
`, "hard", "bob@client.example"},
		{"yahoo", `From: MAILER-DAEMON@yahoo.example
To: sam@seller.example
Subject: Failure Notice

Sorry, we were unable to deliver your message to the following address.

<zed@yahoo.example>:
554: delivery error: dd This user doesn't have a yahoo.example account (zed@yahoo.example) [0] - mta1047.mail.yahoo.example

--- Below this line is a copy of the message.
`, "hard", "zed@yahoo.example"},
		{"domino", `From: Postmaster@acme.example
To: sam@seller.example
Subject: DELIVERY FAILURE: User jdoe (jdoe@acme.example) not listed in Domino Directory

Your message

  Subject: Quick follow-up

was not delivered to:

  jdoe@acme.example

because:

  User jdoe (jdoe@acme.example) not listed in Domino Directory
`, "hard", "jdoe@acme.example"},
		{"exchange full", `From: postmaster@acme.example
To: sam@seller.example
Subject: Undeliverable: Quick follow-up

Delivery has failed to these recipients or groups:

joe@acme.example
The recipient's mailbox is full and can't accept messages now. Please try resending this message later, or contact the recipient directly.
`, "soft", "joe@acme.example"},
		{"german exchange", `From: Microsoft Outlook <postmaster@firma.example>
To: sam@seller.example
Subject: Unzustellbar: Kurze Nachfrage

Die Zustellung an folgende Empfänger oder Gruppen ist fehlgeschlagen:

m.maier@firma.example
Die E-Mail-Adresse wurde im E-Mail-System des Empfängers nicht gefunden.
`, "hard", "m.maier@firma.example"},
		{"dutch exchange", `From: postmaster@bedrijf.example
To: sam@seller.example
Subject: Onbestelbaar: Even opvolgen

Levering aan deze geadresseerden of groepen is mislukt:

p.devries@bedrijf.example
Het postvak van de geadresseerde is vol en kan op dit moment geen berichten ontvangen.
`, "soft", "p.devries@bedrijf.example"},
		{"french exchange", `From: postmaster@societe.example
To: sam@seller.example
Subject: Non remis : Suite

La remise des messages à ces destinataires ou groupes a échoué :

c.martin@societe.example
L'adresse e-mail est introuvable dans le système de messagerie du destinataire.
`, "hard", "c.martin@societe.example"},
		{"postfix deferred", `From: MAILER-DAEMON@mx.seller.example (Mail Delivery System)
To: sam@seller.example
Subject: Delayed Mail (still being retried)
Content-Type: multipart/report; report-type=delivery-status; boundary="d"

--d
Content-Type: text/plain

This is the mail system at host mx.seller.example.

####################################################################
# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #
####################################################################

<lee@slow.example>: connect to mx.slow.example[192.0.2.9]:25: Connection timed out

--d
Content-Type: message/delivery-status

Final-Recipient: rfc822; lee@slow.example
Action: delayed
Status: 4.4.1
Diagnostic-Code: X-Postfix; connect to mx.slow.example[192.0.2.9]:25: Connection timed out
Will-Retry-Until: Fri, 20 Nov 2026 10:00:00 +0000 (UTC)

--d--
`, "soft", "lee@slow.example"},
		{"policy o365", `From: Microsoft Outlook <postmaster@acme.example>
To: sam@seller.example
Subject: Undeliverable: Quick follow-up
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

Your message to ann@acme.example couldn't be delivered.
Your message wasn't delivered because the recipient's email provider rejected it.

--b
Content-Type: message/delivery-status

Final-recipient: RFC822; ann@acme.example
Action: failed
Status: 5.7.1
Diagnostic-code: smtp;550 5.7.1 Service unavailable, Client host [192.0.2.1] blocked using Spamhaus

--b--
`, "", "ann@acme.example"},
	}
	for _, c := range cases {
		res := Classify([]byte(strings.ReplaceAll(c.raw, "\n", "\r\n")), now)
		if res.Kind != KindBounce || res.BounceClass != c.class || res.Recipient != c.rcpt {
			t.Errorf("%s: got %s class=%q rcpt=%q status=%q; want class=%q rcpt=%q", c.name, res.Kind, res.BounceClass, res.Recipient, res.Status, c.class, c.rcpt)
		}
	}
}

// TestIntentPhrasings checks further everyday phrasings in the four languages.
func TestIntentPhrasings(t *testing.T) {
	cases := []struct {
		body  string
		want  Intent
		until string
	}{
		{"Hi Sam, happy to jump on a call. How does Tuesday 10am sound?", IntentInterested, ""},
		{"Sure, send over some times for next week.", IntentInterested, ""},
		{"This looks interesting. Can you share a case study?", IntentInterested, ""},
		{"Please send me a quote for 20 users.", IntentInterested, ""},
		{"I'd love to see a demo.", IntentInterested, ""},
		{"Thanks but we're happy with our current provider.", IntentNotInterested, ""},
		{"We don't need this. Please don't contact me again.", IntentUnsubscribe, ""},
		{"No thank you.", IntentNotInterested, ""},
		{"We've decided to go with another vendor.", IntentNotInterested, ""},
		{"Please take me off your mailing list.", IntentUnsubscribe, ""},
		{"Unsubscribe", IntentUnsubscribe, ""},
		{"Can you reach out again in February? We're finalising budgets.", IntentNotNow, "2027-02-01"},
		{"Timing isn't great. Let's reconnect in the new year.", IntentNotNow, "2027-01-01"},
		{"Try me again in a couple of months.", IntentNotNow, "2027-01-04"},
		{"Maybe next quarter.", IntentNotNow, "2027-01-01"},
		{"We're in the middle of a reorg, follow up in 6 weeks.", IntentNotNow, "2026-12-16"},
		{"We move warehouses in March, so check back in Q2.", IntentNotNow, "2027-04-01"},
		{"I've forwarded this to our IT lead, mark.t@client.example, he'll decide.", IntentReferral, ""},
		{"You'll want to talk to Priya (priya@client.example) - she owns procurement.", IntentReferral, ""},
		{"How much does it cost?", IntentOther, ""},
		// everyday words that must not flip the intent
		{"I already have a call on Tuesday, can we do Wednesday at 3 instead?", IntentInterested, ""},
		{"No worries about the delay - Thursday works.", IntentInterested, ""},
		{"We're good to go, send the contract over.", IntentInterested, ""},
		{"Leuk, laten we volgende week bellen.", IntentInterested, ""},
		{"Stuur me maar een offerte.", IntentInterested, ""},
		{"Wij zijn niet geïnteresseerd.", IntentNotInterested, ""},
		{"Wilt u mij van uw mailinglijst halen?", IntentUnsubscribe, ""},
		{"Benader ons over een half jaar nog eens.", IntentNotNow, "2027-05-04"},
		{"Ik ben niet de juiste persoon, mail maar naar inkoop@klant.example.", IntentReferral, ""},
		{"Gerne, schicken Sie mir bitte weitere Informationen.", IntentInterested, ""},
		{"Danke, wir haben bereits eine Lösung.", IntentNotInterested, ""},
		{"Bitte nehmen Sie mich aus Ihrem Verteiler.", IntentUnsubscribe, ""},
		{"Aktuell haben wir keine Kapazitäten, melden Sie sich gerne im März wieder.", IntentNotNow, "2027-03-01"},
		{"Oui, envoyez-moi une proposition.", IntentInterested, ""},
		{"Non merci, nous avons déjà un outil.", IntentNotInterested, ""},
		{"Merci de ne plus m'écrire.", IntentUnsubscribe, ""},
		{"Revenez vers moi en septembre.", IntentNotNow, "2027-09-01"},
		{"Je vous mets en relation avec mon collègue paul@client.example.", IntentReferral, ""},
	}
	for _, c := range cases {
		res := Classify(msg("Wed, 4 Nov 2026 10:00:00 +0100", "pat@client.example", "Re: hi", c.body+"\n"), now)
		if res.Intent != c.want || fmtDate(res.Until) != c.until {
			t.Errorf("%q: got %s %q, want %s %q", c.body, res.Intent, fmtDate(res.Until), c.want, c.until)
		}
	}
}

// TestConcurrentClassify runs the classifier from several goroutines, for
// the race detector: the compiled rules are shared.
func TestConcurrentClassify(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	var msgs [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, b)
	}
	rules := DefaultRules().With(IntentInterested, "en", "count us in")
	done := make(chan Result)
	for g := 0; g < 8; g++ {
		go func(g int) {
			var last Result
			for i := 0; i < 20; i++ {
				last = rules.Classify(msgs[(g+i)%len(msgs)], now)
				Classify(msgs[(g+i)%len(msgs)], now)
			}
			done <- last
		}(g)
	}
	for g := 0; g < 8; g++ {
		if r := <-done; r.Kind == "" {
			t.Error("empty result")
		}
	}
}

// TestParcelNoticeIsNotABounce: bounce wording without a mail daemon, an SMTP
// reply or a returned message is not a bounce.
func TestParcelNoticeIsNotABounce(t *testing.T) {
	raw := "From: Parcel Co <track@parcel.example>\r\nSubject: Delivery failed: your order 1234\r\n\r\n" +
		"Your package could not be delivered today. We will try again tomorrow.\r\n"
	if got := Classify([]byte(raw), now).Kind; got == KindBounce {
		t.Errorf("kind = %s", got)
	}
}
