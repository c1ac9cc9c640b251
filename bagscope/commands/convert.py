"""``replay convert``: a whole log in another format (ROS1 bag, rosbag2 db3 or MCAP), with the
same copying as ``replay clip`` (:func:`bagscope.clip.clip_log` without a window)."""

from __future__ import annotations

from bagscope.cli import (
    LogPaths,
    MsgPathOpt,
    StrictOpt,
    TypestoreOpt,
    bad_option,
    open_logs,
    out,
    user_errors,
)
from bagscope.commands.clip import (
    CompressionOpt,
    FormatOpt,
    OutOpt,
    OverwriteOpt,
    check_format,
    describe,
)


def convert(
    logs: LogPaths,
    output: OutOpt,
    fmt: FormatOpt = None,
    compression: CompressionOpt = "none",
    overwrite: OverwriteOpt = False,
    typestore: TypestoreOpt = None,
    msg_path: MsgPathOpt = None,
    strict: StrictOpt = False,
) -> None:
    """Convert a log to mcap, db3 or bag: definitions, QoS and latching kept; ROS1 <-> ROS2
    payloads converted byte-wise (std_msgs/Header's seq dropped, or written as 0)."""
    from bagscope.clip import clip_log
    from bagscope.sim.errors import OutputExistsError

    with user_errors():
        check_format(fmt)
        try:
            with open_logs(logs, typestore, msg_path, strict=strict) as log:
                result = clip_log(
                    log, output, fmt=fmt, compression=compression, overwrite=overwrite
                )
                out.print(describe(result))
        except OutputExistsError as err:
            bad_option(f"{err.path} already exists; pass --overwrite to replace it")
