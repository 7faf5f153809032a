# Runs the client-only program, and checks what it and the libraries of its components contain:
# -DPROGRAM=path -DARCHIVES=a;b (the archives a client-only program links: client, protocol).
execute_process(COMMAND ${PROGRAM} ipc:///nonexistent/zproc-client-only.sock
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out MATCHES "unreachable")
  message(FATAL_ERROR "client-only program failed (${rc}): ${out}${err}")
endif()
foreach(file ${PROGRAM} ${ARCHIVES})
  execute_process(COMMAND nm --defined-only -C ${file} OUTPUT_VARIABLE symbols RESULT_VARIABLE rc
    ERROR_QUIET)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "nm failed on ${file}")
  endif()
  foreach(forbidden "__cxa_throw" "zproc::process_detail::" "zproc::swarm_detail::"
          "zproc::server::")
    string(FIND "${symbols}" "${forbidden}" at)
    if(NOT at EQUAL -1)
      string(SUBSTRING "${symbols}" ${at} 120 context)
      message(FATAL_ERROR "${file} (client-only) defines ${forbidden}: ${context}")
    endif()
  endforeach()
endforeach()
message(STATUS "client-only program: connects, and links no process, swarm or server code")
