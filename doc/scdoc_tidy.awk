# scdoc_tidy.awk - drop the paragraph macros scdoc 1.11 emits where there
# is no paragraph (right after .TH, .SH or .SS, right before .SH, .SS or
# another .P, at the end), and move one before .RE to after it: mandoc
# -Tlint warns about each ("skipping paragraph macro"), and the pages
# must lint clean. Nothing else of scdoc's output is touched, so every
# other warning still reaches the test.
{ line[++n] = $0 }

function is(i, macro) {
	return i >= 1 && i <= n && (line[i] == macro || index(line[i], macro " ") == 1)
}

END {
	# ".P" then ".RE": the paragraph break belongs after the indent ends.
	for (i = 1; i < n; i++)
		if (line[i] == ".P" && line[i + 1] == ".RE") {
			line[i] = ".RE"
			line[i + 1] = ".P"
		}
	prev = ""
	for (i = 1; i <= n; i++) {
		if (line[i] == ".P") {
			if (prev ~ /^\.(TH|SH|SS|P)( |$)/)
				continue
			if (i == n || is(i + 1, ".SH") || is(i + 1, ".SS") || line[i + 1] == ".P")
				continue
		}
		print line[i]
		prev = line[i]
	}
}
