# build_page.cmake - one man page from its configured scdoc source:
#   cmake -DSCDOC=... -DAWK=... -DSRC=x.scd -DOUT=x.N [-DREFERENCE=ref.scd]
#         -DTIDY=scdoc_tidy.awk -P build_page.cmake
# With REFERENCE, the line "%CONFIG_REFERENCE%" of SRC is replaced by that
# file (warren.conf(5): the README's configuration reference) and the
# assembled source is kept beside OUT as OUT.scd, for the drift test.
# scdoc's output goes through TIDY (see scdoc_tidy.awk) into OUT.
set(scd "${SRC}")
if(REFERENCE)
  file(READ "${SRC}" text)
  file(READ "${REFERENCE}" ref)
  string(FIND "${text}" "\n%CONFIG_REFERENCE%\n" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${SRC}: no %CONFIG_REFERENCE% line")
  endif()
  string(REPLACE "\n%CONFIG_REFERENCE%\n" "\n${ref}" text "${text}")
  set(scd "${OUT}.scd")
  file(WRITE "${scd}" "${text}")
endif()
execute_process(COMMAND "${SCDOC}" INPUT_FILE "${scd}"
  OUTPUT_FILE "${OUT}.raw" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "scdoc failed on ${scd} (${rc})")
endif()
execute_process(COMMAND "${AWK}" -f "${TIDY}" "${OUT}.raw"
  OUTPUT_FILE "${OUT}" RESULT_VARIABLE rc)
file(REMOVE "${OUT}.raw")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${TIDY} failed on ${OUT} (${rc})")
endif()
