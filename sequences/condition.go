package sequences

import "strings"

// Fields looks up a contact field by name: the contact's own fields
// (first_name, last_name, company, email, timezone, birthday, stage) and its
// custom fields. ok is false when the contact has no such field.
type Fields func(field string) (value string, ok bool)

// MapFields looks fields up in a map.
func MapFields(m map[string]string) Fields {
	return func(field string) (string, bool) {
		v, ok := m[field]
		return v, ok
	}
}

// get treats a nil lookup as a contact without fields, so callers that have
// none (tests, previews of a sequence) need not build an empty one.
func (f Fields) get(field string) (string, bool) {
	if f == nil {
		return "", false
	}
	return f(field)
}

// Condition tests one contact field. The configuration sets exactly one of
// Equals, NotEquals, In and Empty; if several are set, all must hold, and a
// Condition with none set holds.
//
// Values are compared with surrounding spaces trimmed and case folded,
// because fields typically come from hand-edited CSV files where "Yes",
// "yes " and "YES" mean the same. A missing field reads as "".
type Condition struct {
	Field string
	// Equals holds when the field is present and equal to *Equals.
	Equals *string
	// NotEquals holds when the field is missing or differs from *NotEquals.
	NotEquals *string
	// In holds when the field is present and equal to one of the values.
	In []string
	// Empty holds when *Empty is whether the field is missing or blank.
	Empty *bool
}

// Match reports whether the contact's fields satisfy c.
func (c Condition) Match(fields Fields) bool {
	v, present := fields.get(c.Field)
	v = strings.TrimSpace(v)
	same := func(want string) bool { return strings.EqualFold(v, strings.TrimSpace(want)) }
	if c.Equals != nil && !(present && same(*c.Equals)) {
		return false
	}
	if c.NotEquals != nil && present && same(*c.NotEquals) {
		return false
	}
	if c.In != nil {
		found := false
		for _, want := range c.In {
			if present && same(want) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if c.Empty != nil && *c.Empty != (v == "") {
		return false
	}
	return true
}

// MatchAll reports whether every condition holds; an empty list holds. Both
// a step's skip_if and a rule's fields are read this way, so a rule can
// require several qualifying criteria (audience, means, authority) at once.
func MatchAll(conds []Condition, fields Fields) bool {
	for _, c := range conds {
		if !c.Match(fields) {
			return false
		}
	}
	return true
}
