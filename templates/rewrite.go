package templates

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/template/parse"
)

// rewriter edits parsed templates before their first execution. It is how the
// package keeps its promises without asking authors to remember anything:
//
//   - every printed reference (.Contact.X, $v, field "x", …) is checked for
//     emptiness right where it is used, so the error names the field and points at
//     it; a reference that flows into default is exempt, because default is how an
//     author says "empty is fine, use this instead";
//   - every printing action gets a final check too, so a function that returns ""
//     (field "plan", a zero date) cannot leave a hole either;
//   - in Markdown bodies every printing action ends in _md, which escapes whatever
//     it prints;
//   - each spin call gets a key for its position, for stable choices;
//   - function arity and literal cta URLs are checked now, not at send time.
//
// text/template has no hook for any of this, but its parse tree is exported and
// its executor simply runs whatever commands the tree holds.
type rewriter struct {
	src   source
	mode  mode
	part  string
	tree  string
	spinN int
	calls []*parse.TemplateNode
	errs  []Error
}

func (rw *rewriter) errorf(pos parse.Pos, format string, args ...any) {
	rw.errs = append(rw.errs, rw.src.errAt(int(pos), fmt.Sprintf(format, args...)))
}

// run rewrites every tree of one parsed file. Trees are visited in name order so
// spin keys do not depend on map iteration order.
func (rw *rewriter) run(trees map[string]*parse.Tree, exists func(string) bool) {
	names := make([]string, 0, len(trees))
	for n, t := range trees {
		if t != nil && t.Root != nil {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		rw.tree = n
		rw.spinN = 0
		rw.list(trees[n].Root)
	}
	for _, c := range rw.calls {
		if !exists(c.Name) {
			rw.errorf(c.Pos, "no template named %q is defined in this file", c.Name)
		}
	}
}

func (rw *rewriter) list(l *parse.ListNode) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		rw.node(n)
	}
}

func (rw *rewriter) node(n parse.Node) {
	switch n := n.(type) {
	case *parse.ActionNode:
		rw.pipe(n.Pipe)
		if len(n.Pipe.Decl) == 0 {
			rw.guard(n.Pipe, true)
		}
	case *parse.IfNode:
		rw.branch(&n.BranchNode)
	case *parse.RangeNode:
		rw.branch(&n.BranchNode)
	case *parse.WithNode:
		rw.branch(&n.BranchNode)
	case *parse.TemplateNode:
		rw.calls = append(rw.calls, n)
		if n.Pipe != nil {
			rw.pipe(n.Pipe)
		}
	case *parse.ListNode:
		rw.list(n)
	}
}

// branch leaves conditions unguarded: {{ if .Contact.Company }} exists precisely to
// test for emptiness.
func (rw *rewriter) branch(b *parse.BranchNode) {
	rw.pipe(b.Pipe)
	rw.list(b.List)
	rw.list(b.ElseList)
}

// pipe does the checks and rewrites that apply to every pipeline, printing or not.
func (rw *rewriter) pipe(p *parse.PipeNode) {
	if p == nil {
		return
	}
	for i, cmd := range p.Cmds {
		rw.command(cmd, i > 0)
	}
}

func (rw *rewriter) command(cmd *parse.CommandNode, piped bool) {
	for j, arg := range cmd.Args {
		switch a := arg.(type) {
		case *parse.PipeNode:
			rw.pipe(a)
		case *parse.ChainNode:
			if pn, ok := a.Node.(*parse.PipeNode); ok {
				rw.pipe(pn)
			}
		case *parse.IdentifierNode:
			rw.ident(cmd, j, a, piped)
		}
	}
	if len(cmd.Args) > 0 {
		if id, ok := cmd.Args[0].(*parse.IdentifierNode); ok && id.Ident == "spin" {
			key := rw.part + "/" + rw.tree + "#" + strconv.Itoa(rw.spinN)
			rw.spinN++
			id.Ident = "_spin"
			args := []parse.Node{id, stringNode(key, id.Pos)}
			cmd.Args = append(args, cmd.Args[1:]...)
		}
	}
}

func (rw *rewriter) ident(cmd *parse.CommandNode, j int, id *parse.IdentifierNode, piped bool) {
	if strings.HasPrefix(id.Ident, "_") {
		rw.errorf(id.Pos, "%s is reserved for internal use", id.Ident)
		return
	}
	want, ok := funcArity[id.Ident]
	if !ok {
		return
	}
	got := 0 // an identifier used as an argument is called with none
	if j == 0 {
		got = len(cmd.Args) - 1
		if piped {
			got++
		}
	}
	if got != want {
		rw.errorf(id.Pos, "%s takes %d argument%s (%s), got %d", id.Ident, want, plural(want), funcUsage[id.Ident], got)
		return
	}
	if j == 0 && id.Ident == "cta" && !piped {
		if s, ok := cmd.Args[2].(*parse.StringNode); ok {
			if _, err := checkURL(s.Text); err != nil {
				rw.errorf(s.Pos, "%v", err)
			}
		}
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// guard inserts the emptiness checks into a pipeline whose value gets printed (or,
// for nested pipelines, used as an argument).
func (rw *rewriter) guard(p *parse.PipeNode, top bool) {
	if len(p.Cmds) == 0 {
		return
	}
	action := "{{" + p.String() + "}}"
	d := -1
	for i, c := range p.Cmds {
		if isCall(c, "default") {
			d = i
		}
	}
	cmds := make([]*parse.CommandNode, 0, len(p.Cmds)+3)
	for i, c := range p.Cmds {
		// Whatever feeds the last default is allowed to be empty, and so are
		// default's own arguments: the fallback is checked by the final check below
		// when it is not a literal.
		if i <= d {
			cmds = append(cmds, c)
			continue
		}
		for j := 1; j < len(c.Args); j++ {
			c.Args[j] = rw.require(c.Args[j])
		}
		cmds = append(cmds, c)
		if _, fn := c.Args[0].(*parse.IdentifierNode); !fn {
			// An operand such as .Contact.FirstName: check the value it produced.
			switch a := c.Args[0].(type) {
			case *parse.PipeNode:
				rw.guard(a, false)
			default:
				if isReference(a) {
					cmds = append(cmds, rw.reqCommand(a))
				}
			}
		}
	}
	last := p.Cmds[len(p.Cmds)-1]
	exempt := isCall(last, "_spin") || isCall(last, "default") && len(last.Args) > 1 && isLiteral(last.Args[1])
	if !exempt {
		cmds = append(cmds, command(p.Pos, identNode("_check", p.Pos), stringNode(action, p.Pos)))
	}
	if top && rw.mode == modeMD {
		cmds = append(cmds, command(p.Pos, identNode("_md", p.Pos)))
	}
	p.Cmds = cmds
}

// require wraps a reference used as a function argument as (REF | _req "REF").
func (rw *rewriter) require(n parse.Node) parse.Node {
	if pn, ok := n.(*parse.PipeNode); ok {
		rw.guard(pn, false)
		return pn
	}
	if !isReference(n) {
		return n
	}
	return &parse.PipeNode{
		NodeType: parse.NodePipe,
		Pos:      n.Position(),
		Cmds:     []*parse.CommandNode{command(n.Position(), n), rw.reqCommand(n)},
	}
}

// isReference reports whether n reads data (as opposed to a literal or a function
// call): those are the nodes that can be empty. Bare $ and . are the whole Data or
// the value a with/range already tested, so they are left alone.
func isReference(n parse.Node) bool {
	switch n := n.(type) {
	case *parse.FieldNode, *parse.ChainNode:
		return true
	case *parse.VariableNode:
		return !(len(n.Ident) == 1 && n.Ident[0] == "$")
	}
	return false
}

func isLiteral(n parse.Node) bool {
	switch n.(type) {
	case *parse.StringNode, *parse.NumberNode, *parse.BoolNode:
		return true
	}
	return false
}

func isCall(c *parse.CommandNode, name string) bool {
	if len(c.Args) == 0 {
		return false
	}
	id, ok := c.Args[0].(*parse.IdentifierNode)
	return ok && id.Ident == name
}

func (rw *rewriter) reqCommand(ref parse.Node) *parse.CommandNode {
	pos := rw.start(ref)
	return command(pos, identNode("_req", pos), stringNode(ref.String(), pos))
}

// start finds where a reference begins. The parser records .Contact.FirstName at
// its second segment (it builds a chain when it sees ".FirstName"), which would
// put the error column in the middle of the name.
func (rw *rewriter) start(n parse.Node) parse.Pos {
	pos := n.Position()
	var head string
	switch n := n.(type) {
	case *parse.FieldNode:
		if len(n.Ident) > 1 {
			head = "." + n.Ident[0]
		}
	case *parse.VariableNode:
		if len(n.Ident) > 1 {
			head = n.Ident[0]
		}
	}
	if head == "" {
		return pos
	}
	if p := int(pos) - len(head); p >= 0 && strings.HasPrefix(rw.src.text[p:], head) {
		return parse.Pos(p)
	}
	return pos
}

// The constructors below build nodes by hand because parse has no public
// constructors for most of them; the executor only reads the exported fields.
// Positions are those of the code they guard, so an error points there.

func command(pos parse.Pos, args ...parse.Node) *parse.CommandNode {
	return &parse.CommandNode{NodeType: parse.NodeCommand, Pos: pos, Args: args}
}

func identNode(name string, pos parse.Pos) *parse.IdentifierNode {
	return parse.NewIdentifier(name).SetPos(pos)
}

func stringNode(s string, pos parse.Pos) *parse.StringNode {
	return &parse.StringNode{NodeType: parse.NodeString, Pos: pos, Quoted: strconv.Quote(s), Text: s}
}
