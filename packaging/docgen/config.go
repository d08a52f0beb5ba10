package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Key is one documented key of the reference config.
type Key struct {
	// Path is the key's place: "lvsd.state_dir",
	// "virtual_services[].real_servers[].weight".
	Path string
	// Example is the reference's value when it is a scalar or a flow
	// collection ("/var/lib/lvsd", "{type: gue, port: 6090}").
	Example string
	// Doc is the reference's comment on it.
	Doc string
	// Commented is true for a key the reference shows commented out
	// (an alternative or an off-by-default setting).
	Commented bool
}

// Reference is examples/reference.yaml, parsed for the lvsd.yaml(5) page.
type Reference struct {
	// Intro are the paragraphs of the file's opening comment.
	Intro []string
	Keys  []Key
	// Text is the whole file, shown in the page as the example.
	Text string
}

// commentedKey is a commented-out "key: value  # doc" line.
var commentedKey = regexp.MustCompile(`^#\s*([a-z_]+):\s*(.*?)\s*(?:#\s*(.*))?$`)

// ParseReference reads the reference config: every key with its value
// and comment, including the ones it shows commented out. name is the
// file's name for errors.
func ParseReference(name string, text []byte) (Reference, error) {
	ref := Reference{Text: string(text)}
	var para []string
	for _, l := range strings.Split(string(text), "\n") {
		if !strings.HasPrefix(l, "#") {
			break
		}
		c := strings.TrimSpace(strings.TrimPrefix(l, "#"))
		if c == "" {
			ref.Intro = append(ref.Intro, strings.Join(para, " "))
			para = nil
			continue
		}
		para = append(para, c)
	}
	if len(para) > 0 {
		ref.Intro = append(ref.Intro, strings.Join(para, " "))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		return ref, fmt.Errorf("%s: %w", name, err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return ref, fmt.Errorf("%s: want a mapping at the top", name)
	}
	seen := map[string]int{}
	add := func(k Key) {
		if i, ok := seen[k.Path]; ok {
			if ref.Keys[i].Doc == "" {
				ref.Keys[i].Doc = k.Doc
			}
			return
		}
		seen[k.Path] = len(ref.Keys)
		ref.Keys = append(ref.Keys, k)
	}
	walkReference(doc.Content[0], "", add)
	// The document's head comment holds the commented-out top-level
	// keys written before the first key (include:).
	headKeys(doc.HeadComment+"\n"+doc.Content[0].HeadComment, "", add)
	return ref, nil
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func walkReference(n *yaml.Node, prefix string, add func(Key)) {
	switch n.Kind {
	case yaml.SequenceNode:
		for _, item := range n.Content {
			walkReference(item, prefix+"[]", add)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			headKeys(k.HeadComment, prefix, add)
			if k.Kind != yaml.ScalarNode || k.Value == "" {
				continue // a complex or empty key ("? "): not a config key
			}
			path := join(prefix, k.Value)
			doc := firstNonEmpty(k.LineComment, v.LineComment)
			if doc == "" && v.Kind != yaml.ScalarNode && len(v.Content) > 0 {
				doc = v.Content[0].HeadComment
				if v.Kind == yaml.MappingNode {
					doc = "" // a comment above a mapping's first key is that key's
				}
			}
			add(Key{Path: path, Example: example(v), Doc: cleanComment(doc)})
			walkReference(v, path, add)
			// Commented-out keys after a mapping's last key are that
			// key's foot comment.
			headKeys(k.FootComment, prefix, add)
			headKeys(v.FootComment, path, add)
		}
		if len(n.Content) > 0 {
			headKeys(n.Content[len(n.Content)-1].FootComment, prefix, add)
		}
	}
}

// headKeys adds the commented-out keys of a comment block; the comment
// lines above such a key that are not keys are its documentation.
func headKeys(comment, prefix string, add func(Key)) {
	var prose []string
	for _, l := range strings.Split(comment, "\n") {
		l = strings.TrimSpace(l)
		m := commentedKey.FindStringSubmatch(l)
		if m == nil {
			if c := strings.TrimSpace(strings.TrimPrefix(l, "#")); c != "" {
				prose = append(prose, c)
			}
			continue
		}
		doc := m[3]
		if doc == "" {
			doc = strings.Join(prose, " ")
		}
		prose = nil
		add(Key{Path: join(prefix, m[1]), Example: m[2], Doc: doc, Commented: true})
	}
}

func example(v *yaml.Node) string {
	switch {
	case v.Kind == yaml.ScalarNode:
		return v.Value
	case v.Style&yaml.FlowStyle != 0:
		c := *v
		c.HeadComment, c.LineComment, c.FootComment = "", "", ""
		var b bytes.Buffer
		enc := yaml.NewEncoder(&b)
		if err := enc.Encode(&c); err != nil {
			return ""
		}
		return strings.TrimSpace(b.String())
	}
	return ""
}

func cleanComment(c string) string {
	var out []string
	for _, l := range strings.Split(c, "\n") {
		if l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "#")); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, " ")
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// ConfigMan renders lvsd.yaml(5).
func (ref Reference) ConfigMan(version, date string) []byte {
	var b bytes.Buffer
	header(&b, "lvsd.yaml", "5", date, version, "lvskit")
	b.WriteString(".SH NAME\nlvsd.yaml \\- the configuration of lvsd, the lvskit director\n")
	b.WriteString(".SH SYNOPSIS\n/etc/lvsd/lvsd.yaml\n")
	b.WriteString(".SH DESCRIPTION\n")
	paragraphs(&b, append(append([]string(nil), ref.Intro...),
		"lvsd check --config FILE validates a file and names every mistake with its file:line:column; lvsd reads the file again on SIGHUP (systemctl reload lvsd) and keeps the running configuration when the new one is rejected."))
	b.WriteString(".SH KEYS\n")
	b.WriteString("Each key with its place in the file (a[] is an item of the list a), an example value, and what it does. Keys shown commented out in the reference are alternatives or settings that are off by default.\n")
	section := ""
	for _, k := range ref.Keys {
		top, _, _ := strings.Cut(k.Path, ".")
		top = strings.TrimSuffix(top, "[]")
		if top != section {
			section = top
			fmt.Fprintf(&b, ".SS %s\n", roffEscape(section))
		}
		b.WriteString(".TP\n")
		fmt.Fprintf(&b, ".B %s\n", roffEscape(k.Path))
		doc := k.Doc
		if k.Example != "" {
			if doc != "" {
				doc += "."
			}
			doc = strings.TrimSpace(doc + " Example: " + k.Example)
		}
		b.WriteString(roffEscape(doc) + "\n")
	}
	b.WriteString(".SH EXAMPLE\nThe reference configuration, every key with its default where it has one (/usr/share/doc/lvskit/examples/reference.yaml):\n")
	b.WriteString(".PP\n")
	nofill(&b, strings.Split(strings.TrimRight(ref.Text, "\n"), "\n"))
	b.WriteString(".SH SEE ALSO\n.BR lvsd (8),\n.BR lvstop (8),\n.BR lvsdiag (8)\n")
	return b.Bytes()
}

// DefaultConfig is the package's /etc/lvsd/lvsd.yaml: the reference's
// lvsd: block as it is (the defaults, so lvsd starts and serves its
// status API and metrics on loopback) and every other line commented
// out, to be edited in place.
func (ref Reference) DefaultConfig() []byte {
	var b bytes.Buffer
	b.WriteString(`# /etc/lvsd/lvsd.yaml: lvsd's configuration (man 5 lvsd.yaml).
#
# As shipped, lvsd starts with this file and installs nothing: it serves
# its status API and metrics on loopback. Uncomment and edit the sections
# below, then validate and apply:
#   lvsd check --config /etc/lvsd/lvsd.yaml && systemctl reload lvsd
# More examples, one setup each: /usr/share/doc/lvskit/examples/
#
`)
	live := false
	for _, l := range strings.Split(strings.TrimRight(ref.Text, "\n"), "\n") {
		top := l != "" && l[0] != ' ' && l[0] != '#'
		if top {
			live = strings.HasPrefix(l, "lvsd:")
		}
		switch {
		case live || l == "" || strings.HasPrefix(strings.TrimSpace(l), "#"):
			b.WriteString(l + "\n")
		default:
			b.WriteString("#" + l + "\n")
		}
	}
	return b.Bytes()
}
