package replies

import "fmt"

// DefaultRules returns the built-in intent rules in English, Dutch, German
// and French. The order is the precedence: unsubscribe, referral (with an
// address), not interested, not now, referral (without an address),
// interested. Every call returns a fresh copy that may be extended with With.
func DefaultRules() Rules {
	r := Rules{
		Intents:   defaultIntentRules(),
		Negations: defaultNegations(),
		cache:     &rulesCache{},
	}
	return r
}

var defaultRules = DefaultRules()

func defaultNegations() []string {
	return []string{
		// en
		"not", "no", "never", "nor", "neither", "without", "hardly",
		// nl
		"niet", "geen", "nooit", "zonder",
		// de
		"nicht", "kein", "keine", "keinen", "keinem", "keiner", "nie", "niemals", "ohne",
		// fr
		"pas", "ne", "n'", "jamais", "sans", "aucun", "aucune",
	}
}

func defaultIntentRules() []IntentRule {
	rules := baseIntentRules()
	// "not now" also when the reply names a later month, season or quarter:
	// "reach out in March", "im Frühjahr", "après l'été"
	for i := range rules {
		if rules[i].Intent == IntentNotNow {
			rules[i].Phrases = append(rules[i].Phrases, laterPhrases(rules[i].Lang)...)
		}
	}
	return rules
}

// laterPhrases builds "in <month>", "after <month>", "im <Monat>", "en <mois>"
// and the like for seasons and quarters.
func laterPhrases(lang string) []string {
	var months, seasons, leads, seasonLeads []string
	switch lang {
	case "en":
		months = []string{"january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"}
		leads = []string{"in", "after", "until", "early", "mid", "late", "end of", "beginning of", "start of"}
		seasons = []string{"spring", "summer", "autumn", "fall", "winter"}
		seasonLeads = []string{"in", "in the", "this", "next", "after the", "until the"}
	case "nl":
		months = []string{"januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober", "november", "december"}
		leads = []string{"in", "na", "begin", "eind", "half", "medio", "vanaf", "tot"}
		seasons = []string{"voorjaar", "lente", "zomer", "najaar", "herfst", "winter"}
		seasonLeads = []string{"in het", "in de", "na de", "na het", "dit", "volgend", "deze"}
	case "de":
		months = []string{"januar", "februar", "märz", "april", "mai", "juni", "juli", "august", "september", "oktober", "november", "dezember"}
		leads = []string{"im", "ab", "nach", "anfang", "ende", "mitte", "bis"}
		seasons = []string{"frühjahr", "frühling", "sommer", "herbst", "winter"}
		seasonLeads = []string{"im", "nach dem", "ab", "diesen", "dieses", "nächsten", "nächstes"}
	case "fr":
		months = []string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"}
		leads = []string{"en", "après", "début", "fin", "mi", "à partir de", "jusqu'en"}
		seasons = []string{"printemps", "été", "automne", "hiver"}
		seasonLeads = []string{"au", "en", "cet", "à l'", "après l'", "après le"}
	default:
		return nil
	}
	var out []string
	for _, m := range months {
		for _, l := range leads {
			out = append(out, l+" "+m)
		}
	}
	for _, se := range seasons {
		for _, l := range seasonLeads {
			out = append(out, l+" "+se)
		}
	}
	if lang == "en" {
		for q := 1; q <= 4; q++ {
			out = append(out, fmt.Sprintf("q%d", q))
		}
	}
	return out
}

func baseIntentRules() []IntentRule {
	return []IntentRule{
		// ---- unsubscribe -------------------------------------------------
		{Intent: IntentUnsubscribe, Lang: "en", Phrases: []string{
			"unsubscrib*", "remove me", "remove us", "remove my email", "remove my e-mail",
			"remove my address", "remove my details", "take me off", "take us off",
			"opt out", "opt me out", "opt-out", "stop emailing", "stop e-mailing", "stop sending",
			"stop contacting", "stop writing to me", "stop mailing", "do not email me",
			"do not e-mail me", "do not contact me", "do not contact us", "do not email us",
			"do not write to me", "do not send me", "do not send us", "no more emails", "no more e-mails", "no further emails",
			"no further e-mails", "off your list", "off your mailing list", "delete my email",
			"delete my details", "delete my data", "leave me alone", "never contact me",
			"remove from your list", "remove me from", "remove us from",
		}},
		{Intent: IntentUnsubscribe, Lang: "nl", Phrases: []string{
			"uitschrijv*", "schrijf me uit", "schrijf mij uit", "schrijf ons uit", "afmelden",
			"meld me af", "meld mij af", "verwijder me", "verwijder mij", "verwijder ons",
			"verwijder mijn", "haal me van", "haal mij van", "haal ons van",
			"geen mails meer", "geen e-mails meer", "geen berichten meer", "niet meer mailen",
			"niet meer benaderen", "niet meer contacteren", "stop met mailen",
			"stuur me geen", "stuur mij geen", "stuur ons geen",
			"van jullie lijst", "van uw lijst", "van de mailinglijst", "van de lijst",
			"niet meer bellen", "bel me niet",
			"van uw mailinglijst", "van jullie mailinglijst", "uit uw bestand", "uit jullie bestand",
		}},
		{Intent: IntentUnsubscribe, Lang: "de", Phrases: []string{
			"abmelden", "melden sie mich ab", "austragen", "tragen sie mich aus",
			"tragen sie uns aus", "abbestellen", "entfernen sie mich", "entfernen sie meine",
			"löschen sie mich", "löschen sie meine", "keine e-mails mehr", "keine emails mehr",
			"keine mails mehr", "keine weiteren e-mails", "keine weiteren emails",
			"keine weiteren nachrichten", "nicht mehr kontaktieren", "nicht mehr anschreiben",
			"nicht mehr anmailen", "schreiben sie mir nicht mehr", "aus ihrem verteiler",
			"aus dem verteiler", "aus ihrer liste", "aus ihrer kartei",
			"von ihrer liste", "keine werbung", "entfernen sie uns",
		}},
		{Intent: IntentUnsubscribe, Lang: "fr", Phrases: []string{
			"désabonn*", "désinscri*", "retirez-moi", "retirez moi", "retirer de votre liste",
			"supprimez-moi", "supprimez mon adresse", "supprimer mon adresse",
			"ne plus recevoir", "ne me contactez plus", "ne plus me contacter",
			"ne m'écrivez plus", "arrêtez de m'écrire", "arrêtez de m'envoyer",
			"cessez de m'envoyer", "plus de mails", "plus d'e-mails", "plus de courriels",
			"retirez mon", "ne plus être contacté", "ne plus etre sollicité",
			"ne plus m'écrire", "ne plus m'envoyer", "ne plus nous écrire", "ne plus nous envoyer",
		}},

		// ---- referral, with the referred address in the text -------------
		{Intent: IntentReferral, Lang: "en", NeedsAddress: true, Phrases: []string{
			"talk to", "talk with", "speak to", "speak with", "reach out to", "get in touch with",
			"contact", "write to", "send it to", "send this to",
			"forward", "forwarded", "forwarding", "handles", "handle this", "in charge of",
			"responsible for", "right person", "better person", "person to talk to",
			"point of contact", "colleague", "my boss", "my manager", "our buyer",
			"purchasing", "procurement", "decision maker", "better contact", "right contact",
			"the person you want", "the person you need", "best person", "who handles",
			"handles that", "handles our", "owns this", "looks after", "takes care of",
			"in charge", "is the one to", "is your person",
		}},
		{Intent: IntentReferral, Lang: "en", NeedsAddress: true, CcCounts: true, Phrases: []string{
			"cc'ing", "ccing", "cc'd", "cced", "copying", "copied", "looping in", "looped in",
			"loop in", "adding", "added", "in cc", "in copy",
		}},
		{Intent: IntentReferral, Lang: "nl", NeedsAddress: true, Phrases: []string{
			"neem contact op met", "contact opnemen met", "neem even contact op met",
			"mail even met", "mail met", "mailen met", "bel even met", "collega", "doorgestuurd",
			"stuur het naar", "stuur dit naar", "verantwoordelijk voor", "gaat hierover",
			"gaat daarover", "inkoop", "de juiste persoon", "aanspreekpunt",
			"mailen naar", "mail naar", "stuur een mail naar", "daarvoor verantwoordelijk",
			"doorsturen", "contactpersoon",
		}},
		{Intent: IntentReferral, Lang: "nl", NeedsAddress: true, CcCounts: true, Phrases: []string{
			"in de cc", "in cc", "in kopie", "cc gezet", "meegenomen in de cc",
		}},
		{Intent: IntentReferral, Lang: "de", NeedsAddress: true, Phrases: []string{
			"wenden sie sich an", "wende dich an", "kontaktieren sie", "melden sie sich bei",
			"schreiben sie an", "ansprechpartner", "ansprechpartnerin", "kollege", "kollegin",
			"zuständig", "weitergeleitet", "einkauf", "richtige person",
			"leite weiter", "weiterleiten", "schreiben sie", "kümmert sich",
		}},
		{Intent: IntentReferral, Lang: "de", NeedsAddress: true, CcCounts: true, Phrases: []string{
			"in kopie", "in cc", "cc gesetzt",
		}},
		{Intent: IntentReferral, Lang: "fr", NeedsAddress: true, Phrases: []string{
			"contactez", "contacter", "adressez-vous", "vous adresser à", "collègue",
			"s'occupe de", "responsable de", "responsable des", "transmis", "transféré",
			"bonne personne", "interlocuteur", "interlocutrice",
			"écrivez à", "en charge", "gère", "mets en relation", "mettre en relation",
		}},
		{Intent: IntentReferral, Lang: "fr", NeedsAddress: true, CcCounts: true, Phrases: []string{
			"en copie", "en cc", "mis en copie",
		}},

		// ---- not interested ----------------------------------------------
		{Intent: IntentNotInterested, Lang: "en", Phrases: []string{
			"not interested", "not ~ interested", "no interest", "not for us", "not for me",
			"no thanks", "no thank you", "not a fit", "not a good fit", "not the right fit",
			"not relevant", "not a priority", "we are all set", "i am all set", "we will pass",
			"i will pass", "pass on this", "do not need", "no need for", "no use for",
			"already have a solution", "already have a provider", "already have a vendor",
			"already have a tool", "already have a system", "already have a partner",
			"already have an agency", "already have a platform", "already have something",
			"already have one", "already have ~ in place", "already use", "already using",
			"already work with", "already working with", "went with another",
			"went with a different", "went with someone else", "decided to go with",
			"chose another", "chosen another", "not looking for", "not in the market",
			"not something we need", "not moving forward", "not move forward",
			"not be moving forward", "decline", "no longer interested", "not at all interested",
			"nope", "the answer is no", "we are good thanks", "we are good for now",
			"we are good here", "we are fine thanks", "we are fine as we are", "we are covered",
			"not a need", "happy with our", "not looking",
		}},
		{Intent: IntentNotInterested, Lang: "nl", Phrases: []string{
			"geen interesse", "geen ~ interesse", "niet geïnteresseerd", "niet ~ geïnteresseerd",
			"geen behoefte", "nee dank", "nee dank je", "nee bedankt", "niet nodig",
			"niet relevant", "hebben al een", "maken al gebruik", "gebruiken al",
			"past niet bij ons", "niet voor ons", "geen belangstelling",
			"interesseert ~ niet", "tevreden met onze", "hebben al een oplossing",
			"hebben al een leverancier", "hebben al een systeem", "hebben al een pakket",
			"hebben al een partij", "hebben we al een oplossing", "hebben we al een leverancier",
			"hebben we al een systeem", "werken al met", "geen noodzaak",
		}},
		{Intent: IntentNotInterested, Lang: "de", Phrases: []string{
			"kein interesse", "keine interesse", "kein ~ interesse", "nicht interessiert",
			"nicht ~ interessiert", "kein bedarf", "keinen bedarf", "nein danke", "danke nein",
			"brauchen wir nicht", "benötigen wir nicht", "haben bereits eine lösung",
			"haben bereits einen anbieter", "haben bereits ein system", "haben schon eine lösung",
			"haben schon einen anbieter", "haben schon ein system", "nutzen bereits",
			"arbeiten bereits mit", "arbeiten schon mit",
			"nicht relevant", "nicht für uns", "passt nicht zu uns", "kein thema für uns",
			"interessiert ~ nicht", "zufrieden mit unserem", "zufrieden mit unserer",
			"benötigen keine", "kein thema",
		}},
		{Intent: IntentNotInterested, Lang: "fr", Phrases: []string{
			"pas intéress*", "pas ~ intéress*", "ne m'intéresse pas", "ne nous intéresse pas",
			"non merci", "pas besoin", "aucun intérêt", "pas d'intérêt", "pas pertinent",
			"avons déjà un outil", "avons déjà une solution", "avons déjà un prestataire",
			"avons déjà un fournisseur", "avons déjà un logiciel", "utilisons déjà",
			"travaillons déjà avec", "pas pour nous", "ne donnerons pas suite",
			"pas donner suite", "ne souhaitons pas",
			"déjà équipé*", "satisfait* de notre", "satisfait* de nos", "pas concern*",
		}},

		// ---- not now -----------------------------------------------------
		{Intent: IntentNotNow, Lang: "en", Phrases: []string{
			"not now", "not right now", "not at the moment", "not at this time",
			"not at this point", "not this year", "not this quarter", "not yet", "not ready",
			"not ~ interested right now", "not ~ interested at the moment",
			"not ~ interested at this time", "not ~ interested for now", "not ~ interested yet",
			"not ~ interested until", "maybe later", "perhaps later", "later this year",
			"later in the year", "next year", "next quarter", "next month", "in a few months",
			"in a couple of months", "in a couple months", "in q1", "in q2", "in q3", "in q4",
			"reach out in", "reach out again", "reach back out", "reach out after",
			"reach out next", "reconnect in", "reconnect after", "circle back", "check back",
			"check in again", "follow up in", "follow up after", "follow up next",
			"follow up again", "touch base in", "touch base after", "touch base again",
			"get back in touch", "get in touch in", "get in touch after", "try me again",
			"try again in", "ping me", "contact me again", "contact me in", "contact me after",
			"after the holidays", "after the new year", "in the new year", "too busy", "swamped",
			"bad time", "bad timing", "not a good time", "not the right time", "revisit",
			"no budget", "on hold", "down the road",
			"not ~ right now", "not ~ at the moment", "not ~ at this time",
			"not a priority right now", "not a priority at the moment",
			"not a priority this year", "get back to you in", "get back to you after",
			"get back to you next", "too busy", "very busy", "really busy", "quite busy",
			"extremely busy", "busy period", "busy season", "busy right now",
			"busy at the moment", "busy until", "next fiscal year", "new fiscal year",
			"budget cycle", "timing is not", "sometime next",
		}},
		{Intent: IntentNotNow, Lang: "nl", Phrases: []string{
			"nu even niet", "nu niet", "niet nu", "op dit moment niet", "momenteel niet",
			"voorlopig niet", "nog niet", "later dit jaar", "later in het jaar", "volgend jaar",
			"volgende maand", "volgend kwartaal", "na de zomer", "na de feestdagen",
			"neem later", "later contact", "later nog eens", "later terug", "weer contact op",
			"over een paar maanden", "over een aantal maanden", "kom er later op terug",
			"te druk", "geen tijd", "geen budget", "ander moment",
			"niet ~ op dit moment", "komt nu niet", "komt op dit moment niet",
			"drukke periode", "niet het moment", "niet het juiste moment", "na de vakantie",
			"over een half jaar", "over een jaar", "over een paar weken", "benader ons later",
			"benader me later", "nog eens benaderen",
			"na de zomervakantie", "kom later", "later terugkomen",
		}},
		{Intent: IntentNotNow, Lang: "de", Phrases: []string{
			"nicht jetzt", "jetzt nicht", "momentan nicht", "derzeit nicht", "zurzeit nicht",
			"zur zeit nicht", "aktuell nicht", "im moment nicht", "noch nicht",
			"vielleicht später", "später einmal", "später wieder", "zu einem späteren zeitpunkt",
			"im nächsten jahr", "nächstes jahr", "nächsten monat", "nächstes quartal",
			"im neuen jahr", "nach den feiertagen", "melden sie sich im", "melden sie sich in",
			"melden sie sich nach", "melden sie sich wieder", "kommen sie im",
			"kommen sie nach", "keine zeit", "kein budget", "gerade nicht",
			"passt ~ nicht", "nicht ~ im moment", "keine kapazität", "keine kapazitäten",
			"nicht der richtige zeitpunkt", "ungünstig", "später", "nach dem sommer",
			"nach der sommerpause",
		}},
		{Intent: IntentNotNow, Lang: "fr", Phrases: []string{
			"pas maintenant", "pas pour le moment", "pas pour l'instant", "pas en ce moment",
			"pas encore", "pas tout de suite", "plus tard", "l'année prochaine",
			"le mois prochain", "trimestre prochain", "recontactez-moi", "recontacter",
			"revenez vers moi", "revenir vers moi", "revenez vers nous", "reprendre contact",
			"après les fêtes", "dans quelques mois", "pas le bon moment", "pas le moment",
			"trop occupé*", "pas de budget",
			"pas ~ en ce moment", "pas le bon timing", "dans quelques semaines",
			"d'ici quelques mois", "à la rentrée", "après l'été",
		}},

		// ---- referral without an address ---------------------------------
		{Intent: IntentReferral, Lang: "en", Phrases: []string{
			"not the right person", "wrong person", "not the person", "not the best person",
			"not my area", "not my department", "not responsible for", "talk to my colleague",
			"speak with my colleague", "speak to my colleague", "contact my colleague",
			"not the decision maker", "is the right person", "better person to",
			"the right contact",
		}},
		{Intent: IntentReferral, Lang: "nl", Phrases: []string{
			"daar ga ik niet over", "niet de juiste persoon", "niet de aangewezen persoon",
			"niet verantwoordelijk", "neem contact op met mijn collega", "mijn collega",
		}},
		{Intent: IntentReferral, Lang: "de", Phrases: []string{
			"nicht zuständig", "nicht der richtige ansprechpartner",
			"nicht die richtige ansprechpartnerin", "falsche ansprechpartner",
			"wenden sie sich an meinen kollegen", "wenden sie sich an meine kollegin",
		}},
		{Intent: IntentReferral, Lang: "fr", Phrases: []string{
			"pas la bonne personne", "pas le bon interlocuteur", "pas la bonne interlocutrice",
			"pas mon domaine", "ne suis pas en charge", "contactez mon collègue",
			"contactez ma collègue",
		}},

		// ---- interested --------------------------------------------------
		{Intent: IntentInterested, Lang: "en", Phrases: []string{
			"interested", "sounds good", "sounds great", "sounds interesting",
			"sounds promising", "looks interesting", "looks good", "let's talk", "let's chat",
			"let's connect", "let's meet", "let's do it", "let's set up", "let's schedule",
			"let's book", "let's find a time", "happy to chat", "happy to talk", "happy to meet",
			"happy to hop on", "would love to", "like to learn more", "learn more",
			"tell me more", "more info", "more information", "more details", "send me",
			"send over", "send through", "pricing sheet", "proposal", "a quote", "demo",
			"a trial", "can we schedule", "schedule a call", "set up a call",
			"set up a meeting", "book a call", "book a meeting", "jump on a call",
			"hop on a call", "a quick call", "call me", "give me a call", "give me a ring",
			"works for me", "work for me", "how about", "i am available", "are you free",
			"free on", "calendar invite", "send an invite", "send a calendar",
			"let me know when", "yes", "sure", "absolutely", "definitely", "go ahead",
			"count me in", "relevant for us", "relevant to us", "makes sense",
			"worth a conversation", "worth a chat", "open to", "keen to", "like to see",
			"let's do", "please send", "share more", "time works", "times work",
			"works best", "works", "book a time", "happy to", "would like to", "love to",
			"let's hop", "set something up", "calendar", "available", "send the",
			"can we do", "could we do", "can you do", "could you do", "does ~ work for you",
			"would ~ work for you", "what about",
		}},
		{Intent: IntentInterested, Lang: "nl", Phrases: []string{
			"ja graag", "graag een", "klinkt goed", "klinkt interessant", "klinkt prima",
			"interessant", "ik heb interesse", "heb interesse", "hebben interesse",
			"interesse in", "bel me", "bel mij", "laten we", "afspraak", "inplannen",
			"plan maar", "plan een", "stuur me", "stuur mij", "stuur maar", "offerte", "demo",
			"lijkt me goed", "lijkt me interessant", "ben benieuwd", "meer informatie",
			"uitnodiging", "schikt", "komt goed uit",
			"graag", "ja", "zullen we", "bellen", "afspreken", "kennismaken", "lijkt me leuk",
			"klinkt leuk", "tijd voor", "past mij", "schikt mij",
		}},
		{Intent: IntentInterested, Lang: "de", Phrases: []string{
			"klingt gut", "klingt interessant", "hört sich gut an", "interessant",
			"interessiert", "haben interesse", "habe interesse", "gerne", "gern",
			"rufen sie mich an", "ruf mich an", "termin", "angebot", "senden sie mir",
			"schicken sie mir", "vorführung", "demo", "ja bitte", "passt mir", "bin dabei",
			"mehr informationen", "lassen sie uns", "telefonat", "gespräch",
			"ja", "einverstanden", "telefonieren", "schicken sie", "senden sie", "unterlagen",
			"passt", "zeit für", "freue mich",
		}},
		{Intent: IntentInterested, Lang: "fr", Phrases: []string{
			"ça m'intéresse", "m'intéresse", "nous intéresse", "intéress*", "avec plaisir",
			"volontiers", "je suis disponible", "disponible", "appelez-moi", "rendez-vous",
			"démo", "envoyez-moi", "oui", "d'accord", "bonne idée", "discutons", "parlons-en",
			"un devis", "une proposition", "plus d'informations", "ça me va", "ça marche",
			"pourquoi pas", "envoyez", "appelez", "appeler", "échanger", "ravi", "ravie",
			"ça me convient", "convient", "rdv", "je veux bien", "en savoir plus",
		}},
	}
}
