package config

import (
	"strconv"
	"strings"
)

// Error is one problem in a configuration file, at a position.
type Error struct {
	// File is the path of the file as Load was given it, or as an include
	// named it.
	File string
	// Line and Column are 1-based; zero when the problem has no position
	// (a file that cannot be read), in which case Error() omits them.
	Line, Column int
	// Message says what is wrong and what to write instead.
	Message string
}

// Error formats the problem as "file:line:col: message".
func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
		if e.Column > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Column))
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Message)
	return b.String()
}

// ErrorList is every problem Load found, in file order. Load returns it
// (never an empty one) as its error; use errors.As to get the list.
type ErrorList []Error

// Error prints one problem per line.
func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// position is where a value or key sits in a file.
type position struct {
	file         string
	line, column int32
}

func (p position) known() bool { return p.file != "" }
