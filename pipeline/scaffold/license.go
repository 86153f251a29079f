package scaffold

import (
	"regexp"
	"strings"
)

// A licence text is recognised by phrases that only its own text has,
// compared with spaces, case and comment marks folded. These are the
// licences of most of what an omnibus project builds; anything else
// is left to the user (no classifier library is served to this build:
// see the closing notes).
// The GNU licences name each other in their texts, so they are told by
// their titles, in the first lines (the "or later" is the FSF's
// recommended notice; a source that says "only" needs its identifier
// changed).
var licenses = []struct {
	id   string
	head bool     // the phrases are in the text's first lines (its title)
	all  []string // every phrase must be there
}{
	{"LGPL-2.1-or-later", true, []string{"gnu lesser general public license version 2.1"}},
	{"LGPL-3.0-or-later", true, []string{"gnu lesser general public license version 3"}},
	{"LGPL-2.0-or-later", true, []string{"gnu library general public license version 2"}},
	{"GPL-3.0-or-later", true, []string{"gnu general public license version 3"}},
	{"GPL-2.0-or-later", true, []string{"gnu general public license version 2"}},
	{"Apache-2.0", true, []string{"apache license version 2.0"}},
	{"MPL-2.0", true, []string{"mozilla public license version 2.0"}},
	{"curl", false, []string{"copyright and permission notice", "daniel stenberg", "permission to use, copy, modify, and distribute this software for any purpose"}},
	{"Zlib", false, []string{"provided 'as-is', without any express or implied warranty", "permission is granted to anyone to use this software for any purpose"}},
	{"ISC", false, []string{"permission to use, copy, modify, and/or distribute this software for any purpose with or without fee is hereby granted"}},
	{"MIT", false, []string{"permission is hereby granted, free of charge, to any person obtaining a copy"}},
	{"bzip2-1.0.6", false, []string{"redistribution and use in source and binary forms", "the origin of this software must not be misrepresented", "altered source versions must be plainly marked"}},
	{"BSD-3-Clause", false, []string{"redistribution and use in source and binary forms", "neither the name"}},
	{"BSD-3-Clause", false, []string{"redistribution and use in source and binary forms", "endorse or promote products"}},
	{"BSD-2-Clause", false, []string{"redistribution and use in source and binary forms"}},
	{"Unlicense", false, []string{"this is free and unencumbered software released into the public domain"}},
	{"PSF-2.0", false, []string{"python software foundation license version 2"}},
}

var (
	commentMarks = regexp.MustCompile(`(?m)^[ \t]*(#|//|/?\*+|;+|--)[ \t]?`)
	spaces       = regexp.MustCompile(`\s+`)
)

// Identify is the SPDX identifier of a licence text, "" when it is none
// it knows.
func Identify(text string) string {
	t := commentMarks.ReplaceAllString(text, "")
	t = strings.TrimSpace(strings.ToLower(spaces.ReplaceAllString(t, " ")))
	t = strings.NewReplacer("\u2019", "'", "`", "'", "\"as is\"", "'as-is'", "'as is'", "'as-is'").Replace(t)
	head := t
	if len(head) > 300 {
		head = head[:300]
	}
	for _, l := range licenses {
		in := t
		if l.head {
			in = head
		}
		ok := true
		for _, p := range l.all {
			if !strings.Contains(in, p) {
				ok = false
				break
			}
		}
		if ok {
			return l.id
		}
	}
	return ""
}
