"""ament_python package: builds with colcon in a ROS 2 workspace, or `pip install .`."""

from glob import glob
import os
import re

from setuptools import find_packages, setup

PACKAGE = 'ciper_ros'
SHARE = os.path.join('share', PACKAGE)


def read_version() -> str:
    with open(os.path.join(PACKAGE, '__init__.py')) as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


setup(
    name=PACKAGE,
    version=read_version(),
    packages=find_packages(include=[PACKAGE, PACKAGE + '.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        (SHARE, ['package.xml']),
        (os.path.join(SHARE, 'launch'), sorted(glob('launch/*.launch.py'))),
        (os.path.join(SHARE, 'config'), sorted(glob('config/*.yaml') + glob('config/*.xml'))),
        (os.path.join(SHARE, 'config', 'train'), sorted(glob('config/train/*.yaml'))),
        (os.path.join(SHARE, 'models'), sorted(glob('models/*.pt') + glob('models/*.md')
                                               + glob('models/*.json') + glob('models/*.png'))),
    ],
    # Python dependencies come from rosdep (package.xml) in a ROS workspace and from
    # requirements/*.txt in a venv; setup.py must not pull them (colcon runs it offline).
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='ciper_ros developers',
    maintainer_email='ciper-ros@example.com',
    description='CIPER cross-view localization for ROS 2 vehicles',
    license='Apache-2.0',
    python_requires='>=3.10',
    entry_points={
        'console_scripts': [
            'ciper = ciper_ros.cli:main',
            'localize_node = ciper_ros.ros.node:main',
        ],
    },
)
