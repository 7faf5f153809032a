// zproc/zproc.hpp - everything: state server, client, state, process records, swarm.
#pragma once

#include <zproc/address.hpp>
#include <zproc/client.hpp>
#include <zproc/context.hpp>
#include <zproc/diagnostics.hpp>
#include <zproc/error.hpp>
#include <zproc/json.hpp>
#include <zproc/log.hpp>
#include <zproc/map_stream.hpp>
#include <zproc/process.hpp>
#include <zproc/process_error.hpp>
#include <zproc/process_record.hpp>
#include <zproc/server.hpp>
#include <zproc/state.hpp>
#include <zproc/swarm.hpp>
#include <zproc/target.hpp>
#include <zproc/task.hpp>
#include <zproc/transaction.hpp>
#include <zproc/update.hpp>
#include <zproc/watcher.hpp>
#include <zproc/with_diagnostics.hpp>
