package authz

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	defaultrolemanager "github.com/casbin/casbin/v2/rbac/default-role-manager"

	"github.com/heraldrt/herald/tenants"
)

// Actions a channel policy governs.
const (
	ActionSubscribe   = "subscribe"
	ActionClientEvent = "client-event"
)

// The first field of a policy line.
const (
	EffectAllow = "allow"
	EffectDeny  = "deny"
	EffectRole  = "role"
)

// DefaultPolicy is the document a new app gets. It allows exactly what
// Pusher allows, and a tenant can tighten it by adding deny lines.
const DefaultPolicy = `# Herald channel policy: <effect> <subject> <channel> <action>
allow * * subscribe
allow * * client-event
`

// Limits on a policy document. They keep a compiled policy, and so every
// subscribe and client event, cheap.
const (
	maxDocumentBytes = 64 << 10
	maxRules         = 1000
	maxUserIDBytes   = 128
	maxRoleNameLen   = 64
	// maxSignedRoles bounds how many of a user's signed roles a check
	// looks at, since the user data is written by the tenant's backend
	// but sent by the client.
	maxSignedRoles = 32
)

// Subjects and their prefixes as written in a document and stored in Casbin.
const (
	subjectEveryone  = "*"
	subjectAnonymous = "anon"
	userPrefix       = "user:"
	rolePrefix       = "role:"
	anyAction        = "*"
)

// PolicyError is a rejected policy document. Line is the 1-based line at
// fault, or 0 when the problem is the document as a whole.
type PolicyError struct {
	Line int
	Msg  string
}

// Error returns "line N: msg", or just msg for a whole-document problem.
func (e *PolicyError) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}

// Rule is one line of a policy document. For a permission line Effect is
// allow or deny and Subject, Channel and Action are its fields as written
// (Action may be "*"). For a role line Effect is "role", Subject is the
// user:<id> or role:<name> being given the role and RoleName is the role,
// without the role: prefix.
type Rule struct {
	Line     int
	Effect   string
	Subject  string
	Channel  string
	Action   string
	RoleName string
	// Text is the source line with surrounding blanks removed.
	Text string
}

// ParsePolicy parses and validates a policy document: one rule a line,
// fields separated by spaces or tabs, blank lines and lines whose first
// non-blank character is '#' ignored. There are no trailing comments, as
// '#' is also a channel character (#server-to-user-*). A permission line is
//
//	<allow|deny> <subject> <channel glob> <subscribe|client-event|*>
//
// where subject is * (everyone, anonymous connections included), anon
// (connections without a signed-in user), user:<id> or role:<name>, and
// the glob's only wildcard is '*'. A role line is
//
//	role <user:<id>|role:<name>> <role name>
//
// and gives the subject that role (role:<name> subjects build a
// hierarchy). The document is accepted whole or not at all; any problem is
// a *PolicyError naming its line.
func ParsePolicy(doc string) ([]Rule, error) {
	if len(doc) > maxDocumentBytes {
		return nil, &PolicyError{Msg: fmt.Sprintf("the document is %d bytes; the limit is %d", len(doc), maxDocumentBytes)}
	}
	var rules []Rule
	n := 0
	for line := range strings.Lines(doc) {
		n++
		// Checked on every line, comments included, because the document
		// is stored and shown back to the tenant as text.
		if !utf8.ValidString(line) {
			return nil, &PolicyError{Line: n, Msg: "the line is not valid UTF-8"}
		}
		text := strings.Trim(line, " \t\r\n")
		if text == "" || text[0] == '#' {
			continue
		}
		if len(rules) == maxRules {
			return nil, &PolicyError{Line: n, Msg: fmt.Sprintf("too many rules: the limit is %d", maxRules)}
		}
		r, msg := parseRule(text)
		if msg != "" {
			return nil, &PolicyError{Line: n, Msg: msg}
		}
		r.Line, r.Text = n, text
		rules = append(rules, r)
	}
	return rules, nil
}

// parseRule parses one non-comment line, returning a message saying what
// is wrong with it if anything is.
func parseRule(text string) (Rule, string) {
	// Only spaces and tabs separate fields; any other character ends up
	// inside a field, where validation rejects it.
	f := strings.FieldsFunc(text, func(r rune) bool { return r == ' ' || r == '\t' })
	switch f[0] {
	case EffectAllow, EffectDeny:
		const form = "a rule is <effect> <subject> <channel> <action>"
		if len(f) < 4 {
			return Rule{}, "too few fields: " + form
		}
		if len(f) > 4 {
			return Rule{}, "too many fields: " + form + "; channel names cannot contain spaces and comments must be on a line of their own"
		}
		if msg := checkSubject(f[1]); msg != "" {
			return Rule{}, msg
		}
		if err := tenants.CheckGlob(f[2]); err != nil {
			return Rule{}, err.Error()
		}
		switch f[3] {
		case ActionSubscribe, ActionClientEvent, anyAction:
		default:
			return Rule{}, fmt.Sprintf("unknown action %q: use subscribe, client-event or *", f[3])
		}
		return Rule{Effect: f[0], Subject: f[1], Channel: f[2], Action: f[3]}, ""
	case EffectRole:
		const form = "a role line is role <user:id or role:name> <role name>"
		if len(f) < 3 {
			return Rule{}, "too few fields: " + form
		}
		if len(f) > 3 {
			return Rule{}, "too many fields: " + form
		}
		if !strings.HasPrefix(f[1], userPrefix) && !strings.HasPrefix(f[1], rolePrefix) {
			return Rule{}, fmt.Sprintf("only a user:<id> or role:<name> can be given a role, not %q", f[1])
		}
		if msg := checkSubject(f[1]); msg != "" {
			return Rule{}, msg
		}
		if strings.HasPrefix(f[2], rolePrefix) {
			return Rule{}, fmt.Sprintf("write the role name %q without the role: prefix", f[2])
		}
		if !validRoleName(f[2]) {
			return Rule{}, roleNameMsg(f[2])
		}
		return Rule{Effect: EffectRole, Subject: f[1], RoleName: f[2]}, ""
	}
	msg := fmt.Sprintf("unknown effect %q: use allow, deny or role", f[0])
	switch strings.ToLower(f[0]) {
	case EffectAllow, EffectDeny, EffectRole:
		msg += " (fields are case-sensitive)"
	}
	return Rule{}, msg
}

// checkSubject validates the subject field of a rule.
func checkSubject(s string) string {
	switch {
	case s == subjectEveryone, s == subjectAnonymous:
		return ""
	case strings.HasPrefix(s, userPrefix):
		id := s[len(userPrefix):]
		switch {
		case id == "":
			return `empty user id after "user:"`
		case len(id) > maxUserIDBytes:
			return fmt.Sprintf("the user id is %d bytes; the limit is %d", len(id), maxUserIDBytes)
		case strings.ContainsFunc(id, unicode.IsSpace):
			return fmt.Sprintf("the user id %q contains whitespace", id)
		}
		return ""
	case strings.HasPrefix(s, rolePrefix):
		if !validRoleName(s[len(rolePrefix):]) {
			return roleNameMsg(s[len(rolePrefix):])
		}
		return ""
	}
	return fmt.Sprintf("unknown subject %q: use *, anon, user:<id> or role:<name>", s)
}

// validRoleName reports whether name is 1 to 64 of A-Z a-z 0-9 _ . -.
func validRoleName(name string) bool {
	if name == "" || len(name) > maxRoleNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func roleNameMsg(name string) string {
	return fmt.Sprintf("invalid role name %q: use 1 to %d of A-Z a-z 0-9 _ . -", name, maxRoleNameLen)
}

// Names of the functions the matcher calls, registered with the enforcer.
const (
	subjectInFunc   = "subjectIn"
	channelGlobFunc = "channelGlob"
)

// policyModel is the Casbin model every app's policy is compiled into. The
// domain is the app id, so one app's rows can never match another's
// request (POL-3). r.sub is a *subjectSet, everything a requester is; the
// matcher calls only this package's functions, never Casbin's key or regex
// matchers, so nothing a tenant writes is interpreted as a pattern beyond
// '*' (POL-1). The cheap string comparisons come first because govaluate
// short-circuits &&.
const policyModel = `
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act, eft

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = r.act == p.act && r.dom == p.dom && subjectIn(r.sub, p.sub) && channelGlob(r.obj, p.obj)
`

// Policy is one app's compiled channel policy. It is immutable and safe for
// concurrent use: after CompilePolicy nothing writes to its enforcer, and
// Casbin's Enforce only reads the model, copies its function map on each
// call and caches the parsed matcher in a sync.Map (which the first check,
// made while compiling, fills). Roles are resolved at compile time, so
// checks never consult the role manager.
//
// A request is allowed if and only if some allow rule matches it and no
// deny rule does (deny overrides, whatever the order of the lines). A rule
// matches when its subject is one of the requester's, its channel glob
// matches the channel and its action is the requested one or "*". A
// document with no rules at all means Pusher's behaviour: everything is
// allowed and Casbin is not consulted. Once there is any rule, a request
// no allow rule matches is denied.
type Policy struct {
	appID   string
	doc     string
	version int64
	rules   []Rule

	// enforcer is nil for an empty policy.
	enforcer *casbin.Enforcer
	// rowRule maps each Casbin p row to the index of the first rule that
	// produced it, to say which line decided.
	rowRule map[policyRow]int
	// userRoles holds, by user id, the role:<name> subjects a user holds
	// through role lines; roleClosure holds, by role name, the role
	// itself and every role it implies. Only roles the document names
	// are present, because no other role can match a rule. Every slice
	// has len == cap so that appending to one copies it.
	userRoles   map[string][]string
	roleClosure map[string][]string
	// allowAll holds, by action, the rule that allows that action to
	// everyone on every channel when nothing else could change or
	// explain the decision, as in the default policy: such checks skip
	// Casbin, whose every call allocates a few kilobytes.
	allowAll map[string]*Rule
}

// policyRow is a Casbin p row without its domain, which is the app's.
type policyRow struct{ sub, obj, act, eft string }

// CompilePolicy parses doc and compiles it into a Casbin enforcer whose
// domain is appID. version is the document's version, kept for callers.
// A parse error is a *PolicyError.
func CompilePolicy(appID, doc string, version int64) (*Policy, error) {
	if appID == "" {
		return nil, errors.New("authz: a policy needs an app id")
	}
	rules, err := ParsePolicy(doc)
	if err != nil {
		return nil, err
	}
	p := &Policy{appID: appID, doc: doc, version: version, rules: rules}
	if len(rules) == 0 {
		return p, nil
	}
	if err := p.compile(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Policy) compile() error {
	m, err := model.NewModelFromString(policyModel)
	if err != nil {
		return fmt.Errorf("authz: policy model: %w", err)
	}
	e, err := casbin.NewEnforcer(m)
	if err != nil {
		return fmt.Errorf("authz: policy enforcer: %w", err)
	}
	// Casbin's default role manager follows only 10 levels of role
	// inheritance and silently drops the rest, which would also drop
	// deny rules on the far roles. A chain cannot be longer than the
	// number of rules.
	e.SetRoleManager(defaultrolemanager.NewRoleManager(maxRules))
	e.AddFunction(subjectInFunc, subjectInFunction)
	e.AddFunction(channelGlobFunc, channelGlobFunction)

	// Rows go straight into the model rather than through AddPolicies:
	// Casbin keys rows by their fields joined with commas and skips a row
	// whose key it already holds, and since user ids and globs may
	// contain commas two different rules can share a key (user:a,1,c with
	// d, and user:a with c,1,d, in app 1). Skipping one, perhaps a deny,
	// would change the policy, so rows are deduplicated here on their
	// actual fields instead. The key index is only used to update or
	// remove rows, which a compiled policy never does.
	var prows, grows [][]string
	p.rowRule = make(map[policyRow]int)
	roleNames := make(map[string]bool)
	for i, r := range p.rules {
		if name, ok := strings.CutPrefix(r.Subject, rolePrefix); ok {
			roleNames[name] = true
		}
		if r.Effect == EffectRole {
			roleNames[r.RoleName] = true
			grows = append(grows, []string{r.Subject, rolePrefix + r.RoleName, p.appID})
			continue
		}
		acts := []string{r.Action}
		if r.Action == anyAction {
			acts = []string{ActionSubscribe, ActionClientEvent}
		}
		for _, act := range acts {
			row := policyRow{sub: r.Subject, obj: r.Channel, act: act, eft: r.Effect}
			if _, dup := p.rowRule[row]; dup {
				continue // the earlier identical row is the one that decides
			}
			p.rowRule[row] = i
			prows = append(prows, []string{row.sub, p.appID, row.obj, row.act, row.eft})
		}
	}
	// Casbin explains an allow by the first matching allow row, so rows
	// that name a user or a role go first: a check then reports the most
	// specific grant, which is what Explicit (a policy-authorized private
	// channel) needs and what a person reading the explanation expects.
	// The order changes no decision: the effect does not depend on it.
	slices.SortStableFunc(prows, func(a, b []string) int { return namesSomeone(b[0]) - namesSomeone(a[0]) })
	p.allowAll = allowsAll(prows, p.rowRule, p.rules)
	for _, row := range prows {
		if err := e.GetModel().AddPolicy("p", "p", row); err != nil {
			return fmt.Errorf("authz: add policy row: %w", err)
		}
	}
	if len(grows) > 0 {
		// Role rows cannot collide that way, as role names have no
		// commas; the Ex variant tolerates duplicate role lines.
		if _, err := e.AddGroupingPoliciesEx(grows); err != nil {
			return fmt.Errorf("authz: add role rows: %w", err)
		}
	}

	// Role inheritance is resolved once here rather than on every check.
	p.roleClosure = make(map[string][]string, len(roleNames))
	for name := range roleNames {
		implied, err := e.GetImplicitRolesForUser(rolePrefix+name, p.appID)
		if err != nil {
			return fmt.Errorf("authz: roles of role %s: %w", name, err)
		}
		p.roleClosure[name] = slices.Clip(append([]string{rolePrefix + name}, implied...))
	}
	p.userRoles = make(map[string][]string)
	for _, r := range p.rules {
		id, ok := strings.CutPrefix(r.Subject, userPrefix)
		if r.Effect != EffectRole || !ok || p.userRoles[id] != nil {
			continue
		}
		implied, err := e.GetImplicitRolesForUser(r.Subject, p.appID)
		if err != nil {
			return fmt.Errorf("authz: roles of %s: %w", r.Subject, err)
		}
		p.userRoles[id] = slices.Clip(implied)
	}

	// A first check compiles and caches the matcher, so a broken model
	// fails here rather than on a subscribe.
	if _, _, err := e.EnforceEx(anonymous, p.appID, "", ActionSubscribe); err != nil {
		return fmt.Errorf("authz: policy enforcer: %w", err)
	}
	p.enforcer = e
	return nil
}

// allowsAll finds, for each action, a first row (in Casbin's order)
// "allow * * action" with no deny row for the action: Casbin then always
// allows and always names that row, so Check can answer without it.
func allowsAll(rows [][]string, rowRule map[policyRow]int, rules []Rule) map[string]*Rule {
	out := map[string]*Rule{}
	for _, act := range []string{ActionSubscribe, ActionClientEvent} {
		var first []string
		denied := false
		for _, row := range rows {
			if row[3] != act {
				continue
			}
			if first == nil {
				first = row
			}
			denied = denied || row[4] == EffectDeny
		}
		if first != nil && !denied && first[0] == subjectEveryone && first[2] == "*" && first[4] == EffectAllow {
			out[act] = &rules[rowRule[policyRow{sub: first[0], obj: first[2], act: act, eft: first[4]}]]
		}
	}
	return out
}

// namesSomeone is 1 for a subject naming a user or a role, else 0.
func namesSomeone(subject string) int {
	if strings.HasPrefix(subject, userPrefix) || strings.HasPrefix(subject, rolePrefix) {
		return 1
	}
	return 0
}

// Version returns the version the policy was compiled with.
func (p *Policy) Version() int64 { return p.version }

// Document returns the policy's source text.
func (p *Policy) Document() string { return p.doc }

// Rules returns a copy of the parsed rules, role lines included.
func (p *Policy) Rules() []Rule { return slices.Clone(p.rules) }

// Subject is who asks. UserID is the signed-in user's id, "" for an
// anonymous connection. Roles are role names, without the role: prefix,
// from the user's signed user data; invalid names are ignored and only the
// first 32 entries are considered. An anonymous subject has no roles,
// since only signed user data can carry them.
type Subject struct {
	UserID string
	Roles  []string
}

// Decision is the outcome of a check.
type Decision struct {
	Allowed bool
	// Rule is the rule that decided: the first matching deny, else the
	// first matching allow naming a user or role, else the first matching
	// allow; nil when no rule matched (denied by default)
	// or the policy is empty (Pusher behaviour). It points into the
	// policy and must not be modified.
	Rule *Rule
	// err is why the check itself failed; the request is then denied.
	err error
}

// Check decides whether s may perform action (ActionSubscribe or
// ActionClientEvent) on channel. It never fails open: an unknown action or
// an internal error of the policy engine is a denial whose Reason says so.
func (p *Policy) Check(s Subject, channel, action string) Decision {
	if action != ActionSubscribe && action != ActionClientEvent {
		return Decision{err: fmt.Errorf("unknown action %q", action)}
	}
	if p.enforcer == nil {
		return Decision{Allowed: true}
	}
	if r := p.allowAll[action]; r != nil {
		return Decision{Allowed: true, Rule: r}
	}
	return p.enforce(s, channel, action)
}

// enforce asks Casbin.
func (p *Policy) enforce(s Subject, channel, action string) Decision {
	allowed, hit, err := p.enforcer.EnforceEx(p.subjects(s), p.appID, channel, action)
	if err != nil {
		return Decision{err: err}
	}
	// With this effect, Casbin explains a decision by the first matching
	// deny row, else the first matching allow row, else nothing.
	var rule *Rule
	if len(hit) == 5 { // sub, dom, obj, act, eft
		if i, ok := p.rowRule[policyRow{sub: hit[0], obj: hit[2], act: hit[3], eft: hit[4]}]; ok {
			rule = &p.rules[i]
		}
	}
	if allowed != (rule != nil && rule.Effect == EffectAllow) {
		return Decision{err: fmt.Errorf("the policy engine's answer (allowed=%t) does not match the rule it named (%v)", allowed, hit)}
	}
	return Decision{Allowed: allowed, Rule: rule}
}

// anonymous is the subject set of every anonymous request, shared so that
// checking one allocates nothing here.
var anonymous = &subjectSet{}

// subjects returns everything s is, for the matcher's subjectIn.
func (p *Policy) subjects(s Subject) *subjectSet {
	if s.UserID == "" {
		return anonymous
	}
	roles := p.userRoles[s.UserID]
	for _, name := range s.Roles[:min(len(s.Roles), maxSignedRoles)] {
		// A name missing here, including any invalid name, appears in no
		// rule and cannot change the decision.
		implied := p.roleClosure[name]
		switch {
		case len(implied) == 0:
		case roles == nil:
			roles = implied
		default:
			// Copies on the first append, as precomputed slices are
			// full; later appends may reuse the copy.
			roles = append(roles, implied...)
		}
	}
	return &subjectSet{user: s.UserID, roles: roles}
}

// subjectSet is the request subject r.sub: the requester is "*", then
// either "anon" (user == "") or user:<user>, plus every role:<name> in
// roles. Duplicates in roles are harmless.
type subjectSet struct {
	user  string
	roles []string
}

// has reports whether sub, the subject of a policy row, is one of the set's.
func (s *subjectSet) has(sub string) bool {
	switch {
	case sub == subjectEveryone:
		return true
	case sub == subjectAnonymous:
		return s.user == ""
	case strings.HasPrefix(sub, userPrefix):
		// Ids in rules are never empty, so an anonymous set cannot match,
		// and a user whose id is "anon" is user:anon, never anon.
		return sub[len(userPrefix):] == s.user
	}
	return slices.Contains(s.roles, sub)
}

// subjectInFunction is subjectIn(r.sub, p.sub) for the matcher.
func subjectInFunction(args ...interface{}) (interface{}, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("%s: got %d arguments, want 2", subjectInFunc, len(args))
	}
	set, ok1 := args[0].(*subjectSet)
	sub, ok2 := args[1].(string)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("%s: got arguments of types %T and %T", subjectInFunc, args[0], args[1])
	}
	return set.has(sub), nil
}

// channelGlobFunction is channelGlob(r.obj, p.obj) for the matcher.
func channelGlobFunction(args ...interface{}) (interface{}, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("%s: got %d arguments, want 2", channelGlobFunc, len(args))
	}
	name, ok1 := args[0].(string)
	glob, ok2 := args[1].(string)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("%s: got arguments of types %T and %T", channelGlobFunc, args[0], args[1])
	}
	return tenants.ChannelGlob(name, glob), nil
}

// Explicit reports whether d was decided by an allow rule naming a user or
// a role (not * or anon): the tenant deliberately granted this requester
// access, which can stand in for a private channel's auth token.
func (d Decision) Explicit() bool {
	return d.Allowed && d.Rule != nil && d.Rule.Effect == EffectAllow &&
		(strings.HasPrefix(d.Rule.Subject, userPrefix) || strings.HasPrefix(d.Rule.Subject, rolePrefix))
}

// Reason is a short human description of d, such as
// "denied by line 4: deny user:bob private-* *". For a failed check it
// gives the first line of the error; Err has all of it.
func (d Decision) Reason() string {
	switch {
	case d.err != nil:
		msg, _, _ := strings.Cut(d.err.Error(), "\n")
		return "denied: the policy check failed: " + msg
	case d.Rule != nil && d.Allowed:
		return fmt.Sprintf("allowed by line %d: %s", d.Rule.Line, d.Rule.Text)
	case d.Rule != nil:
		return fmt.Sprintf("denied by line %d: %s", d.Rule.Line, d.Rule.Text)
	case d.Allowed:
		return "allowed: the policy is empty (Pusher behaviour)"
	}
	return "denied: no rule allows it"
}

// Err returns the error that made the check itself fail, or nil. Casbin
// reports a panic with its stack, which belongs in a log, not in Reason.
func (d Decision) Err() error { return d.err }
