# conf_ref_to_scd.awk - README.md's "## Configuration reference" section as
# scdoc, for warren.conf(5): the README is the one source of the reference,
# so the page and the README cannot drift (tests/unit/test_man.c checks
# that the built page holds what this makes of the README of its tree).
#
#   awk -f doc/conf_ref_to_scd.awk README.md > conf_reference.scd
#
# What the section may hold, and what each becomes (anything else fails,
# so that a new construct is handled here rather than mangled):
#   ### / #### heading         an scdoc subsection (## ...)
#   paragraph                   one line (roff fills it)
#   `code`                      bold, literally
#   [text](#anchor)             underlined text; "in README.md" when the
#                               anchor is outside the section
#   | key | default | meaning | a table: one entry per row, the key in
#                               bold, "(default: ...)", the meaning indented
#   ``` fenced block ```        a literal block
#   - list item                 a list item

function die(msg) {
	printf "conf_ref_to_scd.awk: README.md:%d: %s\n", NR, msg > "/dev/stderr"
	failed = 1
	exit 1
}

# A heading's GitHub anchor: lower case, punctuation dropped, spaces to -.
function anchor(text,    a) {
	a = tolower(text)
	gsub(/[^a-z0-9 _-]/, "", a)
	gsub(/ /, "-", a)
	return a
}

# Text outside code: scdoc's *, _ and \ are literal here.
function esc(s) {
	gsub(/\\/, "\\\\", s)
	gsub(/\*/, "\\*", s)
	gsub(/_/, "\\_", s)
	return s
}

# Markdown inline text to scdoc: code spans, links, the rest escaped.
function inline(s,    out, i, j, c, text, target) {
	out = ""
	while (s != "") {
		i = index(s, "`")
		j = index(s, "[")
		if (i == 0 && j == 0) {
			out = out esc(s)
			break
		}
		if (i && (j == 0 || i < j)) {
			out = out esc(substr(s, 1, i - 1))
			s = substr(s, i + 1)
			c = index(s, "`")
			if (c == 0)
				die("unclosed code span")
			text = substr(s, 1, c - 1)
			s = substr(s, c + 1)
			out = out "*" esc(text) "*"
			continue
		}
		out = out esc(substr(s, 1, j - 1))
		s = substr(s, j)
		if (!match(s, /^\[[^]]*\]\([^)]*\)/)) {
			out = out "\\["
			s = substr(s, 2)
			continue
		}
		text = substr(s, 2, index(s, "]") - 2)
		target = substr(s, index(s, "](") + 2, RLENGTH - index(s, "](") - 2)
		s = substr(s, RLENGTH + 1)
		if (target ~ /^#/ && !(substr(target, 2) in local))
			out = out "_" inline(text) "_ in README.md"
		else if (target ~ /^#/)
			out = out "_" inline(text) "_"
		else
			out = out inline(text) " <" esc(target) ">"
	}
	return out
}

# A line of scdoc text that must not start a list, table or heading.
function line_out(s) {
	if (s ~ /^[-.;:|\[\]#]/)
		s = "\\" s
	print s
}

function flush_para() {
	if (para != "") {
		line_out(inline(para))
		print ""
	}
	para = ""
}

# The cells of a table row, split on | outside code spans, trimmed.
function cells(row, arr,    n, i, c, cur, code) {
	n = 0
	cur = ""
	code = 0
	row = substr(row, 2) # the leading |
	for (i = 1; i <= length(row); i++) {
		c = substr(row, i, 1)
		if (c == "`")
			code = !code
		if (c == "|" && !code) {
			gsub(/^ +| +$/, "", cur)
			arr[++n] = cur
			cur = ""
		} else {
			cur = cur c
		}
	}
	return n
}

function table_row(row,    c, n, term) {
	n = cells(row, c)
	if (n != 3)
		die("a table row without 3 cells")
	term = inline(c[1])
	if (c[2] == "required")
		term = term " (required)"
	else
		term = term " (default: " inline(c[2]) ")"
	line_out(term)
	if (c[3] != "")
		print "\t" inline(c[3])
	print ""
}

# Pass 1 (the file twice on the command line is avoided: read it once,
# keep the section) and the anchors of its own headings.
/^## / {
	if (in_section)
		in_section = 0
	if ($0 == "## Configuration reference") {
		in_section = 1
		found = 1
		next
	}
}
in_section {
	lines[++nlines] = $0
	if ($0 ~ /^###+ /) {
		h = $0
		sub(/^#+ /, "", h)
		local[anchor(h)] = 1
	}
}

END {
	if (failed)
		exit 1
	if (!found)
		die("no \"## Configuration reference\" section")
	fence = 0
	table = 0
	item = ""
	for (k = 1; k <= nlines; k++) {
		NR = k # for die()
		l = lines[k]
		if (fence) {
			if (l ~ /^```/) {
				print "```"
				print ""
				fence = 0
			} else {
				gsub(/\\/, "\\\\", l)
				print l
			}
			continue
		}
		if (l ~ /^```/) {
			flush_para()
			print "```"
			fence = 1
			continue
		}
		if (l ~ /^\|/) {
			flush_para()
			if (!table) {
				if (l !~ /^\| key \| default \| meaning \|$/)
					die("a table whose header is not | key | default | meaning |")
				table = 1
			} else if (table == 1) {
				if (l !~ /^\|(---\|)+$/)
					die("a table without its --- line")
				table = 2
			} else {
				table_row(l)
			}
			continue
		}
		table = 0
		if (l ~ /^#### |^### /) {
			flush_para()
			sub(/^#+ /, "", l)
			gsub(/`/, "", l)
			print "## " esc(l)
			print ""
			continue
		}
		if (l ~ /^#/)
			die("a heading other than ### or ####")
		if (l ~ /^- /) {
			flush_para()
			para = ""
			print "- " inline(substr(l, 3))
			initem = 1
			continue
		}
		if (l ~ /^  [^ ]/ && initem) {
			print "  " inline(substr(l, 3))
			continue
		}
		if (l ~ /^[ \t]*$/) {
			flush_para()
			if (initem)
				print ""
			initem = 0
			continue
		}
		if (initem)
			die("a list item's continuation not indented by two spaces")
		sub(/^[ \t]+/, "", l)
		para = para == "" ? l : para " " l
	}
	if (fence)
		die("unclosed fenced block")
	flush_para()
}
