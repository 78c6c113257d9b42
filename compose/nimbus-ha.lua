-- nimbus-ha for HAProxy: hold a request while its backend has no server up, instead of answering 503 at
-- once. During a switchover or fail-back there is a moment between HAProxy marking the old primary down
-- (it answers 503 on /primary for timings.handoverDrainMs before it stops serving) and marking the new
-- one up; requests that arrive then wait here and go to the new primary. Load it with
-- `lua-load nimbus-ha.lua` in `global` and use it in a backend:
--   http-request lua.nimbus_ha_wait_for_server <backend> <max-ms> if { nbsrv(<backend>) eq 0 }
-- After <max-ms> without a server the request gets HAProxy's 503 as before.
core.register_action("nimbus_ha_wait_for_server", { "http-req" }, function(txn, backend, max_ms)
  local left = tonumber(max_ms) or 10000
  while left > 0 and txn.f:nbsrv(backend) == 0 do
    core.msleep(50)
    left = left - 50
  end
end, 2)
